//! Every claim of every caption holds for the trajectory the generator drew, checked on
//! planned clips (parameters + captions, no rendering) of the procedural asset set.
mod util;

use std::collections::HashSet;

use util::synth::*;
use vidcap::synth::scene::{CameraMotion, Interaction, Story, held_out_motion, held_out_scene};
use vidcap::synth::{self, AssetSet, CorpusConfig, Geometry};

fn config(seed: u64) -> CorpusConfig {
    CorpusConfig {
        clips: 0,
        compositional_clips: 0,
        seed,
        geometry: Geometry::default(),
    }
}

fn contains_word(text: &str, word: &str) -> bool {
    text.split_whitespace().any(|w| w == word)
}

#[test]
fn captions_claims_hold_for_trajectories() {
    check_claims(&AssetSet::procedural(), 1000);
}

/// The same checks on the real-imagery catalogue, where the assets script has run.
#[test]
fn captions_claims_hold_with_real_assets_when_cached() {
    let dir = AssetSet::default_dir();
    if !dir.join(vidcap::synth::assets::CATALOGUE_FILE).is_file() {
        eprintln!(
            "skipped: no catalogue in {} (scripts/assets_synth.sh)",
            dir.display()
        );
        return;
    }
    check_claims(&AssetSet::from_catalogue(&dir).unwrap(), 1000);
}

/// The caption names the category, in the singular or the plural.
fn names_category(caption: &str, category: &str) -> bool {
    let padded = format!(" {caption} ");
    let plural_y = category
        .strip_suffix('y')
        .map(|stem| format!(" {stem}ies "))
        .unwrap_or_default();
    padded.contains(&format!(" {category} "))
        || padded.contains(&format!(" {category}s "))
        || padded.contains(&format!(" {category}es "))
        || (!plural_y.is_empty() && padded.contains(&plural_y))
}

fn check_claims(assets: &AssetSet, clips: usize) {
    let cfg = config(11);
    let mut stories = HashSet::new();
    for index in 0..clips {
        let (p, captions) = synth::plan_clip(assets, &cfg, false, index).unwrap();
        stories.insert(format!("{:?}", p.story));
        assert!(
            captions.len() >= 3,
            "clip {index}: only {} captions",
            captions.len()
        );
        let distinct: HashSet<_> = captions.iter().collect();
        assert_eq!(
            distinct.len(),
            captions.len(),
            "clip {index}: duplicate captions"
        );
        let last = last_frame(&p);
        for c in &captions {
            let ctx = format!("clip {index}: {c:?}");
            // Scene and camera.
            assert!(c.contains(&p.scene), "{ctx}: scene {:?} missing", p.scene);
            let cam = p.camera.motion;
            let (s0, s1) = (p.camera.start, p.camera.end);
            let measured_cam = if s1.w < s0.w * 0.9 {
                "zoom_in"
            } else if s1.w > s0.w * 1.1 {
                "zoom_out"
            } else if s1.x > s0.x + 1.0 {
                "pan_right"
            } else if s1.x < s0.x - 1.0 {
                "pan_left"
            } else {
                "static"
            };
            assert_eq!(claimed_camera(c), measured_cam, "{ctx}: camera ({cam:?})");
            // Colour: every tint is stated, and every stated colour is some object's tint.
            let tints: HashSet<&str> = p.objects.iter().filter_map(|o| o.tint.as_deref()).collect();
            for t in &tints {
                assert!(contains_word(c, t), "{ctx}: colour {t} missing");
            }
            // Colour words that name the scene or an object's category are not colour claims.
            let mut rest = format!(" {} ", c.replace(&p.scene, " "));
            for o in &p.objects {
                rest = rest.replace(&format!(" {} ", o.category), " ");
            }
            for (colour, _) in vidcap::synth::scene::COLOURS {
                if contains_word(&rest, colour) {
                    assert!(
                        tints.contains(colour),
                        "{ctx}: {colour} is no object's tint"
                    );
                }
            }
            let object_text = object_part(c);
            let motions = claimed_motions(c);
            match p.story {
                Story::Single | Story::Group => {
                    let expected_count = match p.objects.len() {
                        1 => None,
                        2 => Some("two"),
                        _ => Some("three"),
                    };
                    match expected_count {
                        Some(w) => assert!(contains_word(c, w), "{ctx}: count {w} missing"),
                        None => assert!(
                            !contains_word(c, "two") && !contains_word(c, "three"),
                            "{ctx}: a count for one object"
                        ),
                    }
                    assert!(!contains_word(c, "then"), "{ctx}");
                    assert_eq!(motions.len(), 1, "{ctx}: claims {motions:?}");
                    for o in &p.objects {
                        assert!(
                            names_category(c, &o.category),
                            "{ctx}: {} missing",
                            o.category
                        );
                        let (a, b) = first_last(o);
                        assert_eq!(measured_motion(&a, &b), motions[0], "{ctx}");
                        assert_eq!(
                            claimed_speeds(c),
                            vec![measured_speed(&a, &b, p.geometry.fps)],
                            "{ctx}"
                        );
                    }
                }
                Story::Sequence => {
                    let o = &p.objects[0];
                    assert!(contains_word(c, "then"), "{ctx}: temporal order missing");
                    assert_eq!(motions.len(), 2, "{ctx}: claims {motions:?}");
                    let k = &o.keyframes;
                    assert_eq!(k.len(), 3);
                    assert_eq!(
                        motions[0],
                        measured_motion(&k[0], &k[1]),
                        "{ctx}: first motion"
                    );
                    assert_eq!(
                        motions[1],
                        measured_motion(&k[1], &k[2]),
                        "{ctx}: second motion"
                    );
                    assert_eq!(
                        claimed_speeds(c),
                        vec![
                            measured_speed(&k[0], &k[1], p.geometry.fps),
                            measured_speed(&k[1], &k[2], p.geometry.fps)
                        ],
                        "{ctx}"
                    );
                }
                Story::Interaction { verb, .. } => {
                    let (a, b) = (&p.objects[0], &p.objects[1]);
                    let padded = format!(" {} ", object_text.replace(&p.scene, " "));
                    let (pa, pb) = (
                        padded
                            .find(&format!(" {} ", a.category))
                            .expect("subject named"),
                        padded
                            .find(&format!(" {} ", b.category))
                            .expect("other object named"),
                    );
                    // The agent comes first, unless the sentence is passive ("… by a dog").
                    let passive = object_text.contains("ed by ");
                    assert_eq!(pa < pb, !passive, "{ctx}: who does what");
                    let dist = |f| (x_at(a, f) - x_at(b, f)).abs();
                    let (a0, a1) = first_last(a);
                    let moved = a1.x - a0.x;
                    for m in &motions {
                        let sign = if *m == "left" { -1.0 } else { 1.0 };
                        assert!(*m == "left" || *m == "right", "{ctx}");
                        assert!(moved * sign > 20.0, "{ctx}: subject moved {moved}");
                    }
                    let gap_end = dist(last);
                    let gap_start = dist(0);
                    match verb {
                        Interaction::Chases => {
                            assert!(c.contains("chas") || c.contains("runs after"), "{ctx}");
                            let (b0, b1) = first_last(b);
                            assert!((b1.x - b0.x) * moved > 0.0, "{ctx}: both move the same way");
                            assert!(gap_end < gap_start - 20.0, "{ctx}: the chaser gains");
                            // The chaser is behind: the other is ahead in the direction of motion.
                            assert!((b0.x - a0.x) * moved > 0.0, "{ctx}: chaser behind");
                        }
                        Interaction::Passes => {
                            assert!(c.contains("pass") || c.contains("past"), "{ctx}");
                            let before = x_at(a, 0) - x_at(b, 0);
                            let after = x_at(a, last) - x_at(b, last);
                            assert!(before * after < 0.0, "{ctx}: no crossing");
                        }
                        Interaction::Meets => {
                            assert!(
                                c.contains("meet")
                                    || c.contains("toward each other")
                                    || c.contains("together"),
                                "{ctx}"
                            );
                            let touching = (a.keyframes[0].size + b.keyframes[0].size) / 2.0 + 10.0;
                            assert!(gap_end <= touching && gap_start > gap_end + 60.0, "{ctx}");
                        }
                        Interaction::MovesAwayFrom => {
                            assert!(
                                c.contains("away from")
                                    || c.contains("leaves")
                                    || c.contains("departs"),
                                "{ctx}"
                            );
                            assert!(gap_end > gap_start + 60.0, "{ctx}: no separation");
                        }
                    }
                }
            }
        }
        // Everything stays at least partly visible.
        for o in &p.objects {
            for f in [0, last / 2, last] {
                let (x, y, _) = o.at(f);
                assert!(
                    (0.0..=p.geometry.width as f32).contains(&x)
                        && (0.0..=p.geometry.height as f32).contains(&y),
                    "clip {index}: object centre off screen at frame {f}"
                );
            }
        }
        if p.camera.motion != CameraMotion::Static {
            let bg = assets.background(&p.background).unwrap();
            for r in [p.camera.start, p.camera.end] {
                assert!(
                    r.x >= 0.0 && r.y >= 0.0,
                    "clip {index}: crop outside background"
                );
                assert!(
                    r.x + r.w <= bg.image.width() as f32 + 0.01,
                    "clip {index}: crop too wide"
                );
                assert!(
                    r.y + r.h <= bg.image.height() as f32 + 0.01,
                    "clip {index}: crop too tall"
                );
            }
        }
    }
    assert!(stories.len() >= 7, "story kinds seen: {stories:?}");
}

#[test]
fn compositional_pairs_never_occur_in_regular_clips() {
    let assets = AssetSet::procedural();
    let cfg = config(3);
    let pairs = |p: &vidcap::synth::ClipParams| {
        let mut out = HashSet::new();
        for o in &p.objects {
            out.insert((o.category.clone(), p.scene.clone()));
            for m in o.motions() {
                out.insert((o.category.clone(), m.name().to_string()));
            }
        }
        out
    };
    let mut seen = HashSet::new();
    let mut splits = std::collections::HashMap::new();
    for i in 0..1500 {
        let (p, _) = synth::plan_clip(&assets, &cfg, false, i).unwrap();
        seen.extend(pairs(&p));
        *splits.entry(synth::split_of(cfg.seed, i)).or_insert(0usize) += 1;
    }
    // Roughly 80/10/10.
    assert!(
        splits["train"] > 1100 && splits["val"] > 100 && splits["test"] > 100,
        "{splits:?}"
    );
    let mut novel_scene = 0;
    let mut novel_motion = 0;
    for i in 0..200 {
        let (p, _) = synth::plan_clip(&assets, &cfg, true, i).unwrap();
        let unseen: Vec<_> = pairs(&p)
            .into_iter()
            .filter(|pr| !seen.contains(pr))
            .collect();
        assert!(
            !unseen.is_empty(),
            "compositional clip {i} shows only training pairs"
        );
        for (cat, other) in &unseen {
            if p.scene == *other {
                assert!(held_out_scene(cat, other));
                novel_scene += 1;
            } else {
                novel_motion += 1;
            }
        }
    }
    assert!(
        novel_scene > 20 && novel_motion > 20,
        "{novel_scene} {novel_motion}"
    );
    // The held-out rule leaves every category most of its scenes and motions.
    for cat in assets.categories() {
        let scenes = assets
            .scenes()
            .iter()
            .filter(|s| !held_out_scene(cat, s))
            .count();
        let motions = vidcap::synth::Motion::MOVING
            .iter()
            .filter(|m| !held_out_motion(cat, **m))
            .count();
        assert!(
            scenes >= 3 && motions >= 3,
            "{cat}: {scenes} scenes, {motions} motions left"
        );
    }
}

#[test]
fn planning_is_deterministic_and_seed_dependent() {
    let assets = AssetSet::procedural();
    let a: Vec<_> = (0..50)
        .map(|i| synth::plan_clip(&assets, &config(7), false, i).unwrap())
        .collect();
    let b: Vec<_> = (0..50)
        .rev()
        .map(|i| synth::plan_clip(&assets, &config(7), false, i).unwrap())
        .collect();
    let c: Vec<_> = (0..50)
        .map(|i| synth::plan_clip(&assets, &config(8), false, i).unwrap())
        .collect();
    let b: Vec<_> = b.into_iter().rev().collect();
    assert_eq!(
        a, b,
        "a clip depends only on (seed, index), not on planning order"
    );
    let same = a.iter().zip(&c).filter(|(x, y)| x == y).count();
    assert!(same < 5, "{same} of 50 clips identical across seeds");
}
