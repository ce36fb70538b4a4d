//! Caption grammar: several paraphrased references per clip, each stating every claim of the
//! clip's parameters (who, how many, colour, motion, speed, interaction, scene, camera,
//! order), worded differently, so CIDEr-D rewards content rather than one fixed phrasing.
use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

use super::scene::{CameraMotion, ClipParams, Interaction, Motion, ObjectParams, Speed, Story};

/// Paraphrases of a motion: (singular verb phrase, plural verb phrase).
fn motion_phrases(motion: Motion) -> &'static [(&'static str, &'static str)] {
    match motion {
        Motion::Left => &[
            ("moves left", "move left"),
            ("moves to the left", "move to the left"),
            ("goes left", "go left"),
            ("heads left", "head left"),
            ("travels to the left", "travel to the left"),
        ],
        Motion::Right => &[
            ("moves right", "move right"),
            ("moves to the right", "move to the right"),
            ("goes right", "go right"),
            ("heads right", "head right"),
            ("travels to the right", "travel to the right"),
        ],
        Motion::Up => &[
            ("moves up", "move up"),
            ("goes up", "go up"),
            ("rises", "rise"),
            ("moves upward", "move upward"),
            ("climbs up", "climb up"),
        ],
        Motion::Down => &[
            ("moves down", "move down"),
            ("goes down", "go down"),
            ("sinks", "sink"),
            ("moves downward", "move downward"),
            ("drops down", "drop down"),
        ],
        Motion::Toward => &[
            ("moves toward the camera", "move toward the camera"),
            ("comes closer", "come closer"),
            ("approaches the camera", "approach the camera"),
            (
                "grows larger as it comes closer",
                "grow larger as they come closer",
            ),
            ("comes toward the viewer", "come toward the viewer"),
        ],
        Motion::Away => &[
            ("moves away from the camera", "move away from the camera"),
            ("goes farther away", "go farther away"),
            ("recedes into the distance", "recede into the distance"),
            ("shrinks as it moves away", "shrink as they move away"),
            ("moves away from the viewer", "move away from the viewer"),
        ],
        Motion::Still => &[("stays still", "stay still")],
    }
}

/// Adverbs placed before the verb, and phrases placed after it.
fn speed_phrases(speed: Speed) -> (&'static [&'static str], &'static [&'static str]) {
    match speed {
        Speed::Slowly => (&["slowly", "gently"], &["slowly", "at a slow pace"]),
        Speed::Quickly => (
            &["quickly", "rapidly"],
            &["quickly", "fast", "at a fast pace"],
        ),
    }
}

fn camera_phrases(motion: CameraMotion) -> &'static [&'static str] {
    match motion {
        CameraMotion::Static => &[""],
        CameraMotion::PanLeft => &[
            "while the camera pans left",
            "as the camera pans to the left",
            "with the camera panning left",
        ],
        CameraMotion::PanRight => &[
            "while the camera pans right",
            "as the camera pans to the right",
            "with the camera panning right",
        ],
        CameraMotion::ZoomIn => &[
            "while the camera zooms in",
            "as the camera zooms in",
            "with the camera zooming in",
        ],
        CameraMotion::ZoomOut => &[
            "while the camera zooms out",
            "as the camera zooms out",
            "with the camera zooming out",
        ],
    }
}

/// English plural of a category noun (the catalogue's categories are chosen to need
/// only these rules and this short irregular list).
pub fn plural(noun: &str) -> String {
    const IRREGULAR: [(&str, &str); 8] = [
        ("mouse", "mice"),
        ("sheep", "sheep"),
        ("fish", "fish"),
        ("deer", "deer"),
        ("goose", "geese"),
        ("tomato", "tomatoes"),
        ("potato", "potatoes"),
        ("knife", "knives"),
    ];
    let (head, last) = match noun.rsplit_once(' ') {
        Some((head, last)) => (format!("{head} "), last),
        None => (String::new(), noun),
    };
    if let Some(&(_, p)) = IRREGULAR.iter().find(|(s, _)| *s == last) {
        return format!("{head}{p}");
    }
    let word = if last.ends_with('s')
        || last.ends_with('x')
        || last.ends_with("ch")
        || last.ends_with("sh")
    {
        format!("{last}es")
    } else if last.ends_with('y')
        && !matches!(last.chars().rev().nth(1), Some('a' | 'e' | 'i' | 'o' | 'u'))
    {
        format!("{}ies", &last[..last.len() - 1])
    } else {
        format!("{last}s")
    };
    format!("{head}{word}")
}

fn with_article(phrase: &str) -> String {
    let article = if phrase.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {phrase}")
}

/// "a red dog", "three dogs": count, colour, category.
pub fn noun_phrase(object: &ObjectParams, count: usize) -> String {
    let noun = if count == 1 {
        object.category.clone()
    } else {
        plural(&object.category)
    };
    let body = match &object.tint {
        Some(colour) => format!("{colour} {noun}"),
        None => noun,
    };
    match count {
        1 => with_article(&body),
        2 => format!("two {body}"),
        _ => format!("three {body}"),
    }
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    items.choose(rng).expect("phrase lists are non-empty")
}

/// A verb phrase with its speed, e.g. "slowly moves left" or "goes up at a fast pace".
fn motion_with_speed(
    rng: &mut ChaCha8Rng,
    motion: Motion,
    speed: Option<Speed>,
    plural: bool,
) -> String {
    let &(singular_vp, plural_vp) = pick(rng, motion_phrases(motion));
    let vp = if plural { plural_vp } else { singular_vp };
    match speed {
        None => vp.to_string(),
        Some(speed) => {
            let (before, after) = speed_phrases(speed);
            if rng.random_bool(0.5) {
                format!("{} {vp}", pick(rng, before))
            } else {
                format!("{vp} {}", pick(rng, after))
            }
        }
    }
}

/// The clause about the objects, without scene or camera.
fn clause(rng: &mut ChaCha8Rng, params: &ClipParams) -> String {
    let subject = &params.objects[0];
    match params.story {
        Story::Single => {
            let phase = subject.phases[0];
            format!(
                "{} {}",
                noun_phrase(subject, 1),
                motion_with_speed(rng, phase.motion, phase.speed, false)
            )
        }
        Story::Sequence => {
            let (p1, p2) = (subject.phases[0], subject.phases[1]);
            let first = motion_with_speed(rng, p1.motion, p1.speed, false);
            let second = motion_with_speed(rng, p2.motion, p2.speed, false);
            let np = noun_phrase(subject, 1);
            match rng.random_range(0..3) {
                0 => format!("{np} {first} , then {second}"),
                1 => format!("{np} first {first} and then {second}"),
                _ => format!("{np} {first} and then {second}"),
            }
        }
        Story::Group => {
            let phase = subject.phases[0];
            format!(
                "{} {}",
                noun_phrase(subject, params.objects.len()),
                motion_with_speed(rng, phase.motion, phase.speed, true)
            )
        }
        Story::Interaction { verb, direction } => {
            let a = noun_phrase(&params.objects[0], 1);
            let b = noun_phrase(&params.objects[1], 1);
            let dir = direction.name();
            let forms: [String; 5] = match verb {
                Interaction::Chases => [
                    format!("{a} chases {b} to the {dir}"),
                    format!("{a} is chasing {b} to the {dir}"),
                    format!("{b} is chased by {a} to the {dir}"),
                    format!("{a} runs after {b} toward the {dir}"),
                    format!("{a} chases {b} , both moving {dir}"),
                ],
                Interaction::Passes => [
                    format!("{a} passes {b} moving {dir}"),
                    format!("{a} moves past {b} to the {dir}"),
                    format!("{a} goes past {b} heading {dir}"),
                    format!("{a} passes by {b} going {dir}"),
                    format!("{b} is passed by {a} moving {dir}"),
                ],
                Interaction::Meets => [
                    format!("{a} meets {b}"),
                    format!("{a} and {b} meet"),
                    format!("{a} and {b} move toward each other"),
                    format!("{a} and {b} come together"),
                    format!("{a} approaches {b} and they meet"),
                ],
                Interaction::MovesAwayFrom => [
                    format!("{a} moves away from {b} to the {dir}"),
                    format!("{a} leaves {b} behind going {dir}"),
                    format!("{a} goes away from {b} toward the {dir}"),
                    format!("{a} moves {dir} away from {b}"),
                    format!("{a} departs from {b} heading {dir}"),
                ],
            };
            pick(rng, &forms).clone()
        }
    }
}

/// One caption: clause, scene and camera in one of a few word orders.
fn caption(rng: &mut ChaCha8Rng, params: &ClipParams, prep: &str) -> String {
    let clause = clause(rng, params);
    let scene = &params.scene;
    let camera = *pick(rng, camera_phrases(params.camera.motion));
    let text = if rng.random_bool(0.3) {
        format!("{prep} {scene} {clause} {camera}")
    } else {
        let pp = if rng.random_bool(0.5) {
            format!("across {scene}")
        } else {
            format!("{prep} {scene}")
        };
        format!("{clause} {pp} {camera}")
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `n` distinct paraphrases (fewer only if the grammar has fewer for this clip).
/// `prep` is the preposition the clip's scene takes ("in", "on", "under", …).
pub fn captions(rng: &mut ChaCha8Rng, params: &ClipParams, prep: &str, n: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(n);
    for _ in 0..n * 20 {
        let c = caption(rng, params, prep);
        if !out.contains(&c) {
            out.push(c);
            if out.len() == n {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_and_articles_of_catalogue_nouns() {
        for (noun, expected) in [
            ("garlic bulb", "garlic bulbs"),
            ("candy cane", "candy canes"),
            ("sheep", "sheep"),
            ("fish", "fish"),
            ("strawberry", "strawberries"),
            ("bus", "buses"),
            ("chess piece", "chess pieces"),
            ("smiley face", "smiley faces"),
            ("peach", "peaches"),
            ("donkey", "donkeys"),
        ] {
            assert_eq!(plural(noun), expected);
        }
        assert_eq!(with_article("easter egg"), "an easter egg");
        assert_eq!(with_article("orange"), "an orange");
        assert_eq!(with_article("red orange"), "a red orange");
        assert_eq!(with_article("yellow apple"), "a yellow apple");
    }
}
