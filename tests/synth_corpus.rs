//! Whole corpora: deterministic for a seed whatever the thread count, in the DESIGN
//! annotation format; the CLI reports which assets it used; bad asset input is a clear error.
mod util;

use std::path::Path;
use std::process::Command;

use image::{Rgb, RgbImage, Rgba, RgbaImage};
use vidcap::synth::{self, AssetSet, AssetSource, CorpusConfig, Geometry};

fn tiny(seed: u64) -> CorpusConfig {
    CorpusConfig {
        clips: 5,
        compositional_clips: 2,
        seed,
        geometry: Geometry {
            width: 320,
            height: 240,
            fps: 25,
            frames: 20,
        },
    }
}

fn generate_with_threads(dir: &Path, threads: usize, seed: u64) {
    util::synth::quiet_ffmpeg();
    let assets = AssetSet::procedural();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let report = pool
        .install(|| synth::generate_corpus(dir, &assets, &tiny(seed)))
        .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.train + report.val + report.test, 5);
    assert_eq!(report.compositional, 2);
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for name in ["annotations.jsonl", "compositional.jsonl"] {
        out.push((name.to_string(), std::fs::read(dir.join(name)).unwrap()));
    }
    let mut videos: Vec<_> = std::fs::read_dir(dir.join("videos"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    videos.sort();
    for v in videos {
        out.push((
            v.file_name().unwrap().to_string_lossy().into_owned(),
            std::fs::read(&v).unwrap(),
        ));
    }
    out
}

#[test]
fn same_seed_same_bytes_across_thread_counts() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    generate_with_threads(a.path(), 1, 5);
    generate_with_threads(b.path(), 3, 5);
    generate_with_threads(c.path(), 2, 6);
    let (fa, fb, fc) = (files(a.path()), files(b.path()), files(c.path()));
    assert_eq!(
        fa.len(),
        2 + 7,
        "5 clips + 2 compositional + 2 annotation files"
    );
    for ((na, ba), (nb, bb)) in fa.iter().zip(&fb) {
        assert_eq!(na, nb);
        assert!(ba == bb, "{na} differs between 1 and 3 threads");
    }
    // A different seed gives different clips.
    let differing = fa.iter().zip(&fc).filter(|((_, x), (_, y))| x != y).count();
    assert!(differing >= 8, "only {differing} files differ across seeds");
    // No temp files are left behind.
    for d in [a.path(), b.path(), a.path().join("videos").as_path()] {
        for e in std::fs::read_dir(d).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.contains("tmp"), "leftover {name}");
        }
    }
}

#[test]
fn annotations_follow_the_design_format() {
    let dir = tempfile::tempdir().unwrap();
    generate_with_threads(dir.path(), 2, 9);
    for (file, compositional) in [("annotations.jsonl", false), ("compositional.jsonl", true)] {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), if compositional { 2 } else { 5 });
        for v in &lines {
            let video = v["video"].as_str().unwrap();
            assert!(!Path::new(video).is_absolute());
            assert!(dir.path().join(video).is_file(), "{video}");
            assert_eq!(v["start"].as_f64(), Some(0.0));
            assert_eq!(v["end"].as_f64(), Some(0.8));
            let caps = v["captions"].as_array().unwrap();
            assert!(caps.len() >= 3);
            let split = v["split"].as_str().unwrap();
            assert!(["train", "val", "test"].contains(&split));
            if compositional {
                assert_eq!(split, "test");
                assert_eq!(v["compositional"], true);
            } else {
                assert!(v.get("compositional").is_none());
            }
            assert!(!v["params"]["objects"].as_array().unwrap().is_empty());
        }
        // The crate's reader takes them back.
        assert_eq!(
            synth::read_annotations(&dir.path().join(file))
                .unwrap()
                .len(),
            lines.len()
        );
    }
    let corpus: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("corpus.json")).unwrap()).unwrap();
    assert_eq!(corpus["assets"]["source"], "procedural");
    assert_eq!(corpus["seed"], 9);
}

#[test]
fn cli_writes_a_corpus_and_says_which_assets_it_used() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vidcap"))
        .args([
            "synth",
            "--procedural",
            "--clips",
            "3",
            "--compositional",
            "1",
        ])
        .args(["--seed", "4", "--seconds", "0.8", "-q", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("procedural"), "{stdout}");
    assert!(stdout.contains("1 compositional"), "{stdout}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("videos"))
            .unwrap()
            .count(),
        4
    );

    let missing = dir.path().join("no-such-assets");
    let out = Command::new(env!("CARGO_BIN_EXE_vidcap"))
        .args(["synth", "--clips", "1", "--out"])
        .arg(dir.path().join("x"))
        .arg("--assets")
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no-such-assets") && stderr.contains("catalogue.tsv"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A tiny catalogue in the script's format, with images made here.
fn write_catalogue(dir: &Path, extra_line: &str) {
    std::fs::create_dir_all(dir.join("img")).unwrap();
    for (name, colour) in [
        ("a", [200u8, 30, 30]),
        ("b", [30, 30, 200]),
        ("c", [30, 200, 30]),
    ] {
        // A disc on a transparent, oversized canvas: preparation must trim it.
        let img = RgbaImage::from_fn(300, 200, |x, y| {
            let (dx, dy) = (x as f32 - 150.0, y as f32 - 100.0);
            if dx * dx + dy * dy < 60.0 * 60.0 {
                Rgba([colour[0], colour[1], colour[2], 255])
            } else {
                Rgba([0, 0, 0, 0])
            }
        });
        img.save(dir.join(format!("img/{name}.png"))).unwrap();
    }
    let tile = RgbImage::from_fn(400, 300, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    tile.save(dir.join("img/t1.png")).unwrap();
    tile.save(dir.join("img/t2.png")).unwrap();
    let text = format!(
        "# test catalogue\nkind\tcategory\tname\tfile\tlicense\tdescription\toptions\n\
         sprite\tball\tball-a\timg/a.png\tCC0\tA ball.\t-\n\
         sprite\tball\tball-b\timg/b.png\tCC0\tA ball.\t-\n\
         sprite\tegg\tegg-c\timg/c.png\tCC0\tAn egg.\t-\n\
         background\tthe test field\tfield\timg/t1.png+img/t2.png\tCC0\tA field.\tprep=on band=0.2,0.9 sky=1,2,3\n{extra_line}"
    );
    std::fs::write(dir.join("catalogue.tsv"), text).unwrap();
}

#[test]
fn catalogue_assets_are_prepared_once_and_render() {
    let dir = tempfile::tempdir().unwrap();
    write_catalogue(dir.path(), "");
    let assets = AssetSet::from_catalogue(dir.path()).unwrap();
    assert_eq!(assets.source, AssetSource::Catalogue);
    assert_eq!(assets.categories(), vec!["ball", "egg"]);
    let bg = assets.background("field").unwrap();
    // Two 400-wide tiles side by side, band of 210 rows, scaled to 360 rows.
    assert_eq!(bg.image.height(), 360);
    assert_eq!(bg.image.width(), (800.0f32 * 360.0 / 210.0).round() as u32);
    assert_eq!(bg.prep, "on");
    let sprite = assets.sprite("ball-a").unwrap();
    let (w, h) = sprite.levels[0].dimensions();
    assert!(
        (118..=121).contains(&w) && (118..=121).contains(&h),
        "trimmed to the disc: {w}x{h}"
    );
    assert!(dir.path().join("prepared/sprite-ball-a.png").is_file());
    // The cached copies load the same.
    let again = AssetSet::from_catalogue(dir.path()).unwrap();
    assert_eq!(again.sprite("ball-a").unwrap().levels[0], sprite.levels[0]);
    let out = tempfile::tempdir().unwrap();
    util::synth::quiet_ffmpeg();
    let report = synth::generate_corpus(out.path(), &assets, &tiny(1)).unwrap();
    assert!(report.failures.is_empty());
    let first = &synth::read_annotations(&out.path().join("annotations.jsonl")).unwrap()[0];
    assert!(
        first.captions[0].contains("the test field"),
        "{:?}",
        first.captions
    );
}

#[test]
fn bad_catalogue_lines_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write_catalogue(dir.path(), "sprite\tball\tonly-three-columns\n");
    let err = format!("{:#}", AssetSet::from_catalogue(dir.path()).err().unwrap());
    assert!(
        err.contains("catalogue.tsv:7") && err.contains("columns"),
        "{err}"
    );

    write_catalogue(
        dir.path(),
        "sprite\tball\tghost\timg/missing.png\tCC0\t-\t-\n",
    );
    let err = format!("{:#}", AssetSet::from_catalogue(dir.path()).err().unwrap());
    assert!(err.contains("missing.png"), "{err}");

    write_catalogue(
        dir.path(),
        "background\tx\ty\timg/t1.png\tCC0\t-\tband=0.9,0.1\n",
    );
    let err = format!("{:#}", AssetSet::from_catalogue(dir.path()).err().unwrap());
    assert!(
        err.contains("catalogue.tsv:7") && err.contains("band"),
        "{err}"
    );

    std::fs::write(dir.path().join("img/a.png"), b"not a png").unwrap();
    std::fs::remove_dir_all(dir.path().join("prepared")).unwrap();
    write_catalogue(dir.path(), "");
    std::fs::write(dir.path().join("img/a.png"), b"not a png").unwrap();
    let err = format!("{:#}", AssetSet::from_catalogue(dir.path()).err().unwrap());
    assert!(err.contains("a.png"), "{err}");
}
