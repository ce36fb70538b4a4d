#!/usr/bin/env python3
"""Reference numbers for vidcap's caption metrics, computed by the real pycocoevalcap.

Run once by a developer (needs `pip install pycocoevalcap` and java); CI only reads the
committed outputs under tests/data/metrics/:

  edge_refs.json / edge_hyps.json      hand-written edge cases (the `vidcap score` input format)
  random_refs.json / random_hyps.json  a seeded generated set (tf-idf / document-frequency path)
  *_expected.json                      corpus and per-id BLEU-1..4, ROUGE-L, CIDEr-D (+ METEOR)
  tokenizer_expected.json              caption -> PTBTokenizer output after punctuation removal

Usage: metrics_reference.py [--out DIR] [--no-meteor]
       metrics_reference.py generate --ids N --refs K --seed S --refs-out R.json --hyps-out H.json
       metrics_reference.py score R.json H.json [--no-meteor]   (prints the expected-JSON)
       metrics_reference.py bench R.json H.json --out SCORES.json  (timed pycocoevalcap run)
       metrics_reference.py bench-compare --vidcap BIN --refs R.json --hyps H.json --workdir DIR
"""
import argparse
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# Hand-written cases: (id, hypothesis, references). Each exercises something named in the id.
EDGE_CASES = [
    ("exact_match", "a man is playing a guitar", ["a man is playing a guitar", "a person plays the guitar", "someone is playing guitar on stage"]),
    ("brevity_short_hyp", "a man", ["a man is slicing a tomato on a board", "a chef cuts vegetables in a kitchen", "someone is chopping a red tomato"]),
    ("brevity_one_word", "dog", ["a dog runs in the park", "a brown dog is running", "the dog plays outside"]),
    ("one_word_exact", "cooking", ["cooking", "a woman is cooking", "someone cooks food"]),
    ("one_word_miss", "zebra", ["a cat sleeps on a sofa", "a kitten is sleeping", "the cat naps on the couch"]),
    ("long_hypothesis", "a man is playing a guitar and singing a song while sitting on a chair in a room with a lamp and a window and a red carpet on the floor near the door", ["a man plays guitar", "a man is singing and playing a guitar", "a guy sings a song"]),
    ("very_long_hyp_repeats", "the the the the the the the the the the the the the the the the the the the the", ["the cat is on the mat", "there is a cat on the mat"]),
    ("no_overlap", "purple elephants dance quietly", ["a car drives down the road", "vehicles move on a highway", "traffic on a busy street"]),
    ("repeated_words", "a dog dog dog is running running", ["a dog is running", "a dog runs fast", "the dog is running on grass"]),
    ("repeated_bigram", "a cat a cat a cat a cat", ["a cat sits on a cat bed", "a cat and a cat", "two cats play"]),
    ("numbers_plain", "2 men are playing 3 games", ["two men are playing three games", "2 men play 3 games of chess", "men playing games"]),
    ("numbers_commas_decimals", "a car costs 1,000 dollars and weighs 2.5 tons", ["the car costs 1,000 dollars", "a car that weighs 2.5 tons", "a cheap car for 1,000"]),
    ("numbers_time_fraction", "at 10:30 he ate 1/2 of a 12-inch pizza", ["he ate half of a 12-inch pizza at 10:30", "a man eats 1/2 a pizza", "someone eating pizza"]),
    ("mixed_case", "A Man Is Riding A HORSE", ["a man is riding a horse", "A MAN RIDES A HORSE", "Someone Riding A Horse On A Beach"]),
    ("punctuation_trailing", "A woman is dancing.", ["A woman is dancing.", "A lady dances!", "Is a woman dancing?"]),
    ("punctuation_inside", "a man, a woman; and a child: together!", ["a man, a woman and a child are together.", "a family: man, woman, child", "people together; happy"]),
    ("punctuation_heavy", "wow... a cat?! -- yes, a cat!!", ["a cat.", "it is a cat...", "a cat -- really"]),
    ("apostrophe_clitics", "he doesn't know it's the dog's toy", ["he does not know that it is the dog's toy", "the dog's toy isn't his", "it's a dog toy"]),
    ("apostrophe_contractions", "they're sure we'll win and you'd agree i'm right", ["they are sure we will win", "we'll win, they're sure", "i'm right and you'd agree"]),
    ("apostrophe_cant_wont", "i can't and won't go", ["i cannot go", "i can't go and i won't", "i will not go"]),
    ("apostrophe_plural_possessive", "the boys' bikes and james' car", ["the boys' bikes are near james' car", "bikes of the boys", "a car and bikes"]),
    ("apostrophe_names", "o'neil plays rock'n'roll music", ["o'neil is playing rock'n'roll", "a man plays rock music", "o'neil on a stage"]),
    ("hyphens_compound", "a well-known 3-year-old dog", ["a well-known dog that is 3-year-old", "a three year old dog", "a famous dog"]),
    ("hyphens_spaced", "a man - a woman -- a child", ["a man, a woman, a child", "man - woman - child", "a family -- man woman child"]),
    ("hyphens_x_ray", "an x-ray of a non-stop e-mail", ["an x-ray image", "a non-stop e-mail chain", "an email"]),
    ("parentheses", "a cat (black) sits on a mat", ["a black cat sits on a mat", "a cat sits (on a mat)", "the cat [black] sits"]),
    ("quotes_double", "a sign says \"stop\" in red", ["a red sign that says stop", "a \"stop\" sign", "a red stop sign"]),
    ("quotes_single", "a sign says 'stop' in red", ["a red sign that says 'stop'", "a stop sign", "a red sign"]),
    ("abbreviations", "mr. smith meets dr. jones in the u.s. at 3 p.m.", ["mr. smith and dr. jones meet", "two men meet in the u.s.", "a meeting at 3 p.m."]),
    ("ellipsis", "a man waits... and waits", ["a man is waiting", "a man waits and waits...", "someone waiting"]),
    ("symbols", "a $5 bill and 50% off at at&t", ["a 5 dollar bill", "50% off", "at&t store sale for $5"]),
    ("slash_words", "a black/white dog and/or a cat", ["a black and white dog", "a dog and/or a cat", "black/white animals"]),
    ("whitespace", "  a   man   runs  ", ["a man runs", " a  man  is  running ", "man runs"]),
    ("tab_whitespace", "a\tman\truns", ["a man runs", "a man is running", "a man jogs"]),
    ("single_reference", "a bird flies over the sea", ["a bird is flying over the ocean"]),
    ("many_references", "a person is cooking", ["a person is cooking", "someone cooks", "a man cooks food", "a woman is cooking", "cooking in a kitchen", "a chef prepares food", "food is being cooked", "a person prepares a meal", "someone is making dinner", "a cook in the kitchen", "a person cooks pasta", "a man is preparing food", "cooking dinner", "a kitchen scene", "someone fries eggs", "eggs are fried", "a person cooking eggs", "breakfast is cooked", "a man in a kitchen", "cooking show"]),
    ("hyp_longer_than_all_refs", "a small brown dog is happily running around the large green park", ["a dog runs", "dog in park", "a dog running"]),
    ("closest_ref_tie", "a b c d e", ["a b c d", "a b c d e f", "x y z"]),
    ("duplicate_refs", "a man is walking", ["a man is walking", "a man is walking", "a man walks"]),
    ("common_words_only", "a the is a the is", ["a man is on the road", "the woman is in a car", "a the is"]),
    ("unicode_quotes_dashes", "a man\u2019s hat \u2014 very \u201cnice\u201d", ["a man's hat is very nice", "a nice hat", "the man's hat"]),
    ("unicode_accents", "a caf\u00e9 in a na\u00efve town", ["a caf\u00e9 in a town", "a coffee shop", "a small caf\u00e9"]),
    ("currency_percent", "prices fell 20 % to $ 3", ["prices fell 20% to $3", "a price drop", "prices fell"]),
    ("question_exclaim_runs", "what?! a dog!!", ["a dog", "what a dog", "a dog?"]),
    ("all_punct_hyp_word", "ok", ["ok", "okay", "all right"]),
    ("bigram_only_overlap", "playing a guitar", ["a man is playing a guitar", "a man playing guitar", "guitar playing"]),
    ("reordered_words", "guitar a playing is man a", ["a man is playing a guitar", "a man plays a guitar", "a guitarist plays"]),
    ("four_gram_overlap", "a man is playing a piano loudly", ["a man is playing a guitar", "a man is playing music", "someone plays"]),
    # captions that tokenize to nothing: pycocoevalcap's ROUGE splits "" into [""], so a
    # punctuation-only hypothesis matches a punctuation-only reference
    ("punct_only_hyp_and_ref", "...", ["...", "a dog runs"]),
    ("punct_only_hyp", "?", ["a cat sleeps", "a small cat"]),
]

PUNCT_PROBES = [
    "A dog runs. A cat sits.", "the dog's bone's end", "Dog's'", "'cause 'tis 'twas 'til 'em",
    "it's. don't. can't.", "wouldn't've", "shouldn't couldn't mustn't needn't", "gonna gotta wanna gimme lemme",
    "5-year-old 1-2 a-1 -a- - a -", "a... b.... ok.. ...d", "?? ?!? !? ?.", "e-mail (e-mail) [x-ray] {a}",
    "\"hello,\" she said. \"goodbye!\"", "he said 'hello.'", "people's peoples' boss's", "'90s 90s 1990's",
    "1,000 1,000,000 3.14 .5 -5 +5 5-10 10:30 1/2 24/7 3d 4k 1080p 2x", "$5 5% #1 a & b", "st. louis and mt. everest",
    "the man is No. 1", "e.g. i.e. vs. etc.", "o.k. ok. u.k.", "x--y x - y", "Cannot CAN'T Don't",
    "a man \u2013 a woman \u2014 a child\u2026", "\u2018single\u2019 \u201cdouble\u201d", "caf\u00e9 d\u00e9j\u00e0-vu",
    "the U.S. army", "ROCK'N'ROLL", "y'all ma'am o'clock", "3.5-inch 2.0", "a;b a:b a,b",
]

# Probes of the lexer's rules (one caption each), from exploring the jar by hand.
PUNCT_PROBES += [
    "a dog runs.", "a man is cooking in the kitchen.", "the man is No. 1 and no. 2 and no.", "a. b",
    "mass. ave", "he said no. She left", "end in etc.", "Mr.", "mr. smith", "it's, he's; she's! dogs'.",
    "'S 'D 'LL N'T", "y'know c'mon d'ye more'n", "rock'n'roll", "Dog's'", "a.. b", "wow!hi what?yes",
    "e.g. i.e. vs. etc. dr. jr. st. ave. no. mt. ft. gen. col. sgt. rev. co. corp. ltd. bros.",
    "jan. feb. mon. tue. calif. mass. n.y. a.m. p.m.", "Dr. Who Mr. Bean U.S. army USA. A.B.C. a.b.c abc.def 3.5. 3. x.",
    "dog. Cat", "x-ray -x x- -- --- a--b a---b a-b-c non-stop", "'hello' 'em 'cause 'n' 'til o'clock y'all ma'am",
    "dogs' toys the boys' ball James' car the '90s rock 'n' roll 90's", "can't Can't CAN'T cannot gonna gotta wanna gimme lemme",
    "it's he's she'd we'll they've I'M i'm don't doesn't isn't aren't ain't", "a,b a;b a:b a!b a?b a.b a/b a|b a~b a^b a=b a+b",
    "$5 5$ 5% #hashtag @user a@b.com www.example.com", "hi!! what?! wow... ok.. ok.... a . . . b (a) [b] {c}",
    "\"a\" \"b\"c a\"b\" \u201ca\u201d \u2018b\u2019 \u00abc\u00bb", "caf\u00e9 d\u00e9j\u00e0-vu na\u00efve \u00c4rger stra\u00dfe \u0153uvre",
    "\u00bd \u00bc \u00be 1\u00bd \u00a35 \u20ac5 \u00a2 5\u00b0C \u00a9", "a&b A & B AT&T R&D", "Mass. Ave and Wash. state and Pa. roads",
    "St. Louis", "a man's hat \u2014 very nice \u2026 really", "THE DOG'S BALL", "two dogs' bowls.", "The man isn't here.",
    "A person is slicing an onion.", "A woman wearing a black-and-white dress.", "a 3-d film", "the 1950s", "it's 5 o'clock",
    "a t-shirt", "the u.s.a. flag", "a man, woman, and child", "a cat's-eye", "a dog; a cat: a bird!", "a b c d e f g",
    "I am. You are.", "mom & dad", "Q&A", "5'11", "6' tall", "3 o'clock", "20-something", "1990s-era",
    "rock'n abc'def ab'cd a'bcd l'amour d'artagnan O'Brien McDonald's shi'ite ne'er o'er e'en",
    "ma'am y'all c'mon d'ye gov't int'l ass'n dep't nat'l cont'd sec'y", "cat's'eye dogs'' '1,000 '99 '1 '123 '05",
    "I'ma I'd've you'd've ol' li'l", "the dog'running", "'s5th", "n't N'T",
    "a man w/ a hat and a/c unit in b&w photo from the 50's",
    "A hot-dog stand at a 3-way intersection ; a U-turn sign",
    "a man riding a skateboard .",
    "two men , one woman",
    "a smiley :) face and ;) wink :-( sad",
    "a T-shirt that says \"I <3 NY\"",
    "the approx. size is 5'2\" tall",
    "A dog's bowl is on the dog's bed.",
    "Its a cat. Im here. theyre ok",
    "a sign reading 'NO PARKING'",
    "a 10-15 minute video of the 2nd & 3rd place",
    "He's 6'2'' and she's 5 ft. 4 in.",
    "an old-fashioned, black-and-white tv",
    "a car (a toyota) drove by.",
    "a cat on a mat...",
    "A bird flies over the ocean!",
    "Is this a dog?",
    "#1 fan, $100 bill, 100% sure",
    "people at the U.N. building in N.Y.C.",
    "some text: hello world",
    "a man - who is tall - walks",
    "an image of a cat/dog",
    "a woman in her 20s/30s",
    "Mt. Fuji and St. Louis and Ft. Worth",
    "a :) b :( c :-) d :-( e ;) f ;-) g :D h :-D i :P j :p k =) l :o m :/ n :] o :[ p <3 q :') r ): s 8) t xD u :-P",
]


# ---------------------------------------------------------------------------------------
# Random, paraphrase-like captions: a few templates over small synonym classes, so that
# hypotheses and references share n-grams at every order and document frequencies vary.
SUBJ = ["man", "woman", "person", "boy", "girl", "child", "dog", "cat", "chef", "player", "team", "crowd", "guy", "lady", "kid", "puppy"]
ADJ = ["young", "old", "small", "big", "happy", "tall", "little", "black", "white", "red", "blue", "funny", "brown", "green"]
VERB = ["playing", "cooking", "running", "singing", "dancing", "talking", "walking", "swimming", "driving", "riding", "eating", "jumping", "reading", "painting", "cutting", "throwing"]
OBJ = ["guitar", "ball", "song", "car", "bike", "horse", "food", "pizza", "book", "picture", "game", "video", "tomato", "cake", "boat", "piano", "soccer", "water"]
PLACE = ["kitchen", "park", "street", "stage", "beach", "room", "field", "pool", "road", "garden", "studio", "house", "city", "forest"]
PREP = ["in", "on", "at", "near", "inside", "outside", "by"]
DET = ["a", "the", "some"]
EXTRA = ["while", "and", "with", "then", "slowly", "quickly", "together", "again", "happily", "loudly"]


def random_caption(rng, subj, verb, obj, place):
    det = rng.choice(DET)
    words = [det]
    if rng.random() < 0.5:
        words.append(rng.choice(ADJ))
    words.append(subj)
    words += rng.choice([["is", verb], [verb], ["is", "seen", verb], ["was", verb]])
    if rng.random() < 0.8:
        words += [rng.choice(DET), obj]
    if rng.random() < 0.7:
        words += [rng.choice(PREP), rng.choice(["the", "a"]), place]
    if rng.random() < 0.3:
        words += [rng.choice(EXTRA), rng.choice(VERB + OBJ)]
    if rng.random() < 0.1:
        words[0] = words[0].capitalize()
    text = " ".join(words)
    r = rng.random()
    if r < 0.1:
        text += "."
    elif r < 0.13:
        text = text.replace(" " + subj + " ", " " + subj + "'s friend ", 1)
    elif r < 0.16:
        text = text.replace(" is ", " isn't ", 1)
    return text


def perturb(rng, caption):
    words = caption.split()
    for _ in range(rng.randint(0, 4)):
        op = rng.random()
        if op < 0.35 and len(words) > 1:
            del words[rng.randrange(len(words))]
        elif op < 0.7:
            words[rng.randrange(len(words))] = rng.choice(SUBJ + ADJ + VERB + OBJ + PLACE + PREP + DET)
        elif op < 0.85:
            words.insert(rng.randrange(len(words) + 1), rng.choice(ADJ + EXTRA))
        elif len(words) > 2:
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def generate(n_ids, refs_min, refs_max, seed):
    rng = random.Random(seed)
    refs, hyps = {}, {}
    for i in range(n_ids):
        vid = "video%d" % i
        subj, verb, obj, place = rng.choice(SUBJ), rng.choice(VERB), rng.choice(OBJ), rng.choice(PLACE)
        k = rng.randint(refs_min, refs_max)
        refs[vid] = []
        for _ in range(k):
            # paraphrase: mostly the clip's own content words, sometimes a synonym-ish swap
            s = subj if rng.random() < 0.8 else rng.choice(SUBJ)
            v = verb if rng.random() < 0.8 else rng.choice(VERB)
            refs[vid].append(random_caption(rng, s, v, obj if rng.random() < 0.8 else rng.choice(OBJ), place))
        r = rng.random()
        if r < 0.05:
            hyps[vid] = random_caption(rng, rng.choice(SUBJ), rng.choice(VERB), rng.choice(OBJ), rng.choice(PLACE))
        elif r < 0.5:
            hyps[vid] = perturb(rng, rng.choice(refs[vid]))
        else:
            hyps[vid] = random_caption(rng, subj, verb, obj, place)
    return refs, hyps


# ---------------------------------------------------------------------------------------
def pycoco_scores(refs, hyps, meteor=True):
    """Exactly what COCOEvalCap.evaluate does, minus SPICE: PTBTokenizer then each scorer."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.cider.cider import Cider

    ids = list(refs.keys())
    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": c} for c in refs[i]] for i in ids})
    res = tok.tokenize({i: [{"caption": hyps[i]}] for i in ids})
    scorers = [(Bleu(4), ["bleu1", "bleu2", "bleu3", "bleu4"]), (Rouge(), "rouge_l"), (Cider(), "cider_d")]
    if meteor:
        from pycocoevalcap.meteor.meteor import Meteor
        scorers.append((Meteor(), "meteor"))
    corpus, per_id = {}, {i: {} for i in ids}
    for scorer, names in scorers:
        score, scores = scorer.compute_score(gts, res) if not isinstance(scorer, Bleu) else scorer.compute_score(gts, res, verbose=0)
        if isinstance(names, list):
            for s, ss, name in zip(score, scores, names):
                corpus[name] = float(s)
                for i, v in zip(gts.keys(), ss):
                    per_id[i][name] = float(v)
        else:
            corpus[names] = float(score)
            for i, v in zip(gts.keys(), scores):
                per_id[i][names] = float(v)
    return {"corpus": corpus, "per_id": per_id}


def bench(refs_path, hyps_path, out_path):
    """pycocoevalcap as COCOEvalCap runs it (PTBTokenizer, then Bleu, Rouge, Cider), timed
    from reading the files to the last score; prints one key=value result line."""
    import time
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.cider.cider import Cider

    def cpu():
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    c0, t0 = cpu(), time.perf_counter()
    refs = json.load(open(refs_path, encoding="utf-8"))
    hyps = json.load(open(hyps_path, encoding="utf-8"))
    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": c} for c in refs[i]] for i in refs})
    res = tok.tokenize({i: [{"caption": hyps[i]}] for i in refs})
    t1 = time.perf_counter()
    bleu, bleu_ids = Bleu(4).compute_score(gts, res, verbose=0)
    t2 = time.perf_counter()
    rouge, rouge_ids = Rouge().compute_score(gts, res)
    t3 = time.perf_counter()
    cider, cider_ids = Cider().compute_score(gts, res)
    t4, c4 = time.perf_counter(), cpu()
    print("pycocoevalcap total_s=%.3f cpu_s=%.3f tokenize_s=%.3f bleu_s=%.3f rouge_s=%.3f cider_s=%.3f"
          % (t4 - t0, c4 - c0, t1 - t0, t2 - t1, t3 - t2, t4 - t3), flush=True)
    ids = list(gts.keys())
    dump(out_path, {
        "corpus": {"bleu": [float(b) for b in bleu], "rouge_l": float(rouge), "cider_d": float(cider)},
        "per_id": {i: {"bleu": [float(bleu_ids[k][n]) for k in range(4)], "rouge_l": float(rouge_ids[n]),
                       "cider_d": float(cider_ids[n])} for n, i in enumerate(ids)},
    })


def busy_seconds():
    """CPU-busy seconds of the whole machine since boot (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def timed(cmd, stdout_path):
    """Runs cmd; returns (wall s, its CPU s, cores used by other processes meanwhile, stdout)."""
    import subprocess
    import time
    t, b0, w0 = os.times(), busy_seconds(), time.perf_counter()
    c0 = t.children_user + t.children_system
    with open(stdout_path, "w") as out:
        subprocess.run(cmd, stdout=out, check=True)
    wall, b1, t = time.perf_counter() - w0, busy_seconds(), os.times()
    cpu = t.children_user + t.children_system - c0
    return wall, cpu, max(0.0, (b1 - b0) - cpu) / wall, open(stdout_path).read()


def bench_compare(a):
    """Alternating rounds: pycocoevalcap, vidcap (all cores), vidcap --threads 1."""
    import statistics
    med = statistics.median
    d = a.workdir
    runs = {"pycocoevalcap": [], "vidcap_all_cores": [], "vidcap_threads_1": []}
    vidcap = [a.vidcap, "-q"]
    score = ["score", "--refs", a.refs, "--hyps", a.hyps, "--json", "--per-id", "--no-meteor"]
    for r in range(1, a.rounds + 1):
        wall, cpu, other, out = timed([sys.executable, os.path.abspath(__file__), "bench", a.refs, a.hyps,
                                       "--out", os.path.join(d, "peer_scores.json")], os.path.join(d, "peer_line.txt"))
        fields = dict(kv.split("=") for kv in out.split()[1:])
        # the peer's own figures exclude interpreter start-up and imports (in its favour)
        runs["pycocoevalcap"].append((float(fields["total_s"]), float(fields["cpu_s"]), other))
        print("# round %d pycocoevalcap %s other_procs_cores=%.2f" % (r, out.strip(), other), flush=True)
        for name, extra, path in [("vidcap_all_cores", [], "vidcap_scores.json"),
                                  ("vidcap_threads_1", ["--threads", "1"], "vidcap_scores_1t.json")]:
            wall, cpu, other, _ = timed(vidcap + extra + score, os.path.join(d, path))
            runs[name].append((wall, cpu, other))
            print("# round %d %s wall_s=%.3f cpu_s=%.3f other_procs_cores=%.2f" % (r, name, wall, cpu, other), flush=True)

    peer = json.load(open(os.path.join(d, "peer_scores.json")))
    worst = 0.0
    for path in ["vidcap_scores.json", "vidcap_scores_1t.json"]:
        ours = json.load(open(os.path.join(d, path)))
        pairs = [(ours["bleu"][k], peer["corpus"]["bleu"][k]) for k in range(4)]
        pairs += [(ours[m], peer["corpus"][m]) for m in ("rouge_l", "cider_d")]
        for i, s in peer["per_id"].items():
            o = ours["per_id"][i]
            pairs += [(o["bleu"][k], s["bleu"][k]) for k in range(4)]
            pairs += [(o[m], s[m]) for m in ("rouge_l", "cider_d")]
        worst = max(worst, max(abs(x - y) for x, y in pairs))
    p = runs["pycocoevalcap"]
    busy = max(o for rs in runs.values() for _, _, o in rs)
    for name in ["vidcap_all_cores", "vidcap_threads_1"]:
        v = runs[name]
        wall_ratio = med([pw / vw for (pw, _, _), (vw, _, _) in zip(p, v)])
        cpu_ratio = med([pc / vc for (_, pc, _), (_, vc, _) in zip(p, v)])
        print("bench_metrics hyps=%d %s wall_s=%.3f pycocoevalcap_wall_s=%.3f speedup_wall=%.1f "
              "cpu_s=%.3f pycocoevalcap_cpu_s=%.3f speedup_cpu=%.1f max_abs_diff=%.1e "
              "(median of %d alternating rounds; tokenization counted on both sides)"
              % (len(peer["per_id"]), name, med(w for w, _, _ in v), med(w for w, _, _ in p), wall_ratio,
                 med(c for _, c, _ in v), med(c for _, c, _ in p), cpu_ratio, worst, a.rounds))
    if busy > 0.10:
        print("# BUSY MACHINE: other processes used up to %.2f cores during the timed runs; "
              "wall-clock ratios are noisy, CPU-time ratios less so" % busy)
    if worst > 1e-6:
        sys.exit("bench_metrics: vidcap and pycocoevalcap disagree by %.3g" % worst)


def tokenized(captions):
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    out = PTBTokenizer().tokenize({str(i): [{"caption": c}] for i, c in enumerate(captions)})
    return {c: out[str(i)][0] for i, c in enumerate(captions)}


def dump(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd")
    g = sub.add_parser("generate")
    g.add_argument("--ids", type=int, required=True)
    g.add_argument("--refs", type=int, default=20)
    g.add_argument("--refs-min", type=int)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--refs-out", required=True)
    g.add_argument("--hyps-out", required=True)
    s = sub.add_parser("score")
    s.add_argument("refs")
    s.add_argument("hyps")
    s.add_argument("--no-meteor", action="store_true")
    c = sub.add_parser("bench-compare")
    c.add_argument("--vidcap", required=True)
    c.add_argument("--refs", required=True)
    c.add_argument("--hyps", required=True)
    c.add_argument("--rounds", type=int, default=3)
    c.add_argument("--workdir", required=True)
    b = sub.add_parser("bench")
    b.add_argument("refs")
    b.add_argument("hyps")
    b.add_argument("--out", required=True)
    ap.add_argument("--out", default=os.path.join(HERE, "..", "tests", "data", "metrics"))
    ap.add_argument("--no-meteor", action="store_true")
    a = ap.parse_args()

    if a.cmd == "generate":
        refs, hyps = generate(a.ids, a.refs_min or a.refs, a.refs, a.seed)
        dump(a.refs_out, refs)
        dump(a.hyps_out, hyps)
        return
    if a.cmd == "bench-compare":
        bench_compare(a)
        return
    if a.cmd == "bench":
        bench(a.refs, a.hyps, a.out)
        return
    if a.cmd == "score":
        refs = json.load(open(a.refs, encoding="utf-8"))
        hyps = json.load(open(a.hyps, encoding="utf-8"))
        if isinstance(hyps, list):
            hyps = {str(h.get("image_id", h.get("video_id"))): h["caption"] for h in hyps}
        json.dump(pycoco_scores(refs, hyps, meteor=not a.no_meteor), sys.stdout, indent=1)
        return

    out = a.out
    os.makedirs(out, exist_ok=True)
    edge_refs = {i: r for i, _, r in EDGE_CASES}
    edge_hyps = {i: h for i, h, _ in EDGE_CASES}
    rand_refs, rand_hyps = generate(500, 3, 12, seed=20261127)
    for name, refs, hyps in [("edge", edge_refs, edge_hyps), ("random", rand_refs, rand_hyps)]:
        dump(os.path.join(out, name + "_refs.json"), refs)
        dump(os.path.join(out, name + "_hyps.json"), hyps)
        dump(os.path.join(out, name + "_expected.json"), pycoco_scores(refs, hyps, meteor=not a.no_meteor))
    captions = sorted(set(PUNCT_PROBES) | {c for _, h, r in EDGE_CASES for c in [h] + r})
    dump(os.path.join(out, "tokenizer_expected.json"), tokenized(captions))


if __name__ == "__main__":
    main()
