//! Dataset readers against the hand-written fixtures in tests/data/datasets/, each in the
//! structure of the published format. Expected clips are read off the fixture files.
use std::fs;
use std::path::{Path, PathBuf};

use vidcap::dataset::{Clip, DatasetFormat, DatasetOptions, Split, load_dataset};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/datasets")
        .join(rel)
}

/// Copies a fixture directory into a fresh temp dir and creates (tiny) video files there.
fn stage(fixture_dir: &str, videos: &[&str]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(fixture(fixture_dir)).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    for v in videos {
        let p = tmp.path().join(v);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, b"not really a video").unwrap();
    }
    tmp
}

fn clip<'a>(clips: &'a [Clip], id: &str) -> &'a Clip {
    clips.iter().find(|c| c.id == id).unwrap_or_else(|| {
        panic!(
            "no clip {id:?} in {:?}",
            clips.iter().map(|c| &c.id).collect::<Vec<_>>()
        )
    })
}

fn err_text(path: &Path, opts: &DatasetOptions) -> String {
    format!("{:#}", load_dataset(path, opts).expect_err("should fail"))
}

#[test]
fn own_jsonl_format() {
    let tmp = stage(
        "jsonl",
        &[
            "videos/kitchen.mp4",
            "clips/dog park.webm",
            "videos/street.mkv",
        ],
    );
    let ds = load_dataset(tmp.path(), &DatasetOptions::default()).unwrap();
    assert_eq!(ds.format, DatasetFormat::Jsonl);
    let ids: Vec<&str> = ds.clips.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "videos/kitchen.mp4@0-4",
            "videos/kitchen.mp4@4-9.5",
            "dog/park",
            "street.mkv"
        ]
    );
    let second = &ds.clips[1];
    assert_eq!(second.video, tmp.path().join("videos/kitchen.mp4"));
    assert_eq!((second.start, second.end), (Some(4.0), Some(9.5)));
    assert_eq!(second.captions, ["a man puts onions in a pan"]);
    assert_eq!(second.split, Split::Train);
    let dog = clip(&ds.clips, "dog/park");
    assert_eq!(dog.captions, ["a dog runs after a ball"]);
    assert_eq!(dog.split, Split::Val);
    assert_eq!((dog.start, dog.end), (None, None));
    // "street.mkv" is not next to the file, but in its videos/ subdirectory.
    let street = clip(&ds.clips, "street.mkv");
    assert_eq!(street.video, tmp.path().join("videos/street.mkv"));
    assert_eq!(street.split, Split::Test);
    assert_eq!(street.captions.len(), 2);
    assert_eq!(ds.missing, [tmp.path().join("videos/not_there.mp4")]);
    assert_eq!(ds.split(Split::Train).count(), 2);
}

#[test]
fn msrvtt_videodatainfo() {
    // video0 and video1 pre-cut (no window); video6513 only as its full YouTube source
    // (window applies); video7010 missing.
    let tmp = stage(
        "msrvtt",
        &[
            "TrainValVideo/video0.mp4",
            "videos/video1.avi",
            "videos/x4bIY4NAwq0.mp4",
        ],
    );
    let ds = load_dataset(
        &tmp.path().join("videodatainfo.json"),
        &DatasetOptions::default(),
    )
    .unwrap();
    assert_eq!(ds.format, DatasetFormat::MsrVtt);
    assert_eq!(ds.clips.len(), 3);
    let v0 = clip(&ds.clips, "video0");
    assert_eq!(v0.video, tmp.path().join("TrainValVideo/video0.mp4"));
    assert_eq!((v0.start, v0.end), (None, None));
    assert_eq!(
        v0.captions,
        [
            "a cartoon animals runs through an ice cave in a video game",
            "a cartoon character runs around inside of a video game"
        ]
    );
    assert_eq!(v0.split, Split::Train);
    assert_eq!(
        clip(&ds.clips, "video1").video,
        tmp.path().join("videos/video1.avi")
    );
    let val = clip(&ds.clips, "video6513");
    assert_eq!(val.split, Split::Val, "MSR-VTT's \"validate\" is val");
    assert_eq!(val.video, tmp.path().join("videos/x4bIY4NAwq0.mp4"));
    assert_eq!((val.start, val.end), (Some(10.0), Some(24.5)));
    assert_eq!(ds.missing.len(), 1);
    assert!(ds.missing[0].ends_with("video7010.mp4"), "{:?}", ds.missing);
}

#[test]
fn msvd_descriptions_txt() {
    let tmp = stage(
        "msvd_txt",
        &[
            "YouTubeClips/-4wsuPCjDBc_5_15.avi",
            "videos/-7KMZQEsJW4.mp4",
            "-_hbPLsZvvo.webm",
            "YouTubeClips/00jrXRMlZOY_0_10.avi",
        ],
    );
    let ds = load_dataset(tmp.path(), &DatasetOptions::default()).unwrap();
    assert_eq!(ds.format, DatasetFormat::MsvdTxt);
    let squirrel = clip(&ds.clips, "-4wsuPCjDBc_5_15");
    assert_eq!(
        squirrel.captions,
        [
            "a squirrel is eating a peanut in it's shell.",
            "a chipmunk is eating.",
            "A squirrel is eating."
        ]
    );
    assert_eq!(
        (squirrel.start, squirrel.end),
        (None, None),
        "pre-cut clip file"
    );
    let onion = clip(&ds.clips, "-7KMZQEsJW4_205_208");
    assert_eq!(
        (onion.start, onion.end),
        (Some(205.0), Some(208.0)),
        "window in the source video"
    );
    let guitar1 = clip(&ds.clips, "-_hbPLsZvvo_5_8");
    let guitar2 = clip(&ds.clips, "-_hbPLsZvvo_19_26");
    assert_eq!(guitar1.video, guitar2.video);
    assert_eq!((guitar2.start, guitar2.end), (Some(19.0), Some(26.0)));
    assert_eq!(ds.missing.len(), 1);
    assert!(ds.missing[0].to_string_lossy().contains("0bSz70pYAP0_5_35"));
    // Standard split over the 5 source ids sorted bytewise: round(5·1200/1970) = 3 train,
    // round(5·100/1970) = 0 val, the rest test.
    for (id, split) in [
        ("-4wsuPCjDBc_5_15", Split::Train),
        ("-7KMZQEsJW4_205_208", Split::Train),
        ("-_hbPLsZvvo_5_8", Split::Train),
        ("-_hbPLsZvvo_19_26", Split::Train),
        ("00jrXRMlZOY_0_10", Split::Test),
    ] {
        assert_eq!(clip(&ds.clips, id).split, split, "{id}");
    }
}

#[test]
fn msvd_standard_split_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("videos")).unwrap();
    // Ids in scrambled order, so "sorted" is tested, not "as written".
    let mut ids: Vec<String> = (0..1970)
        .map(|i| format!("vid{:05}", (i * 7919) % 1970))
        .collect();
    ids.dedup();
    let mut text = String::from("# header\n");
    for id in &ids {
        text += &format!("{id}_1_3 a caption\n");
        fs::write(tmp.path().join(format!("videos/{id}_1_3.avi")), b"x").unwrap();
    }
    fs::write(tmp.path().join("AllVideoDescriptions.txt"), text).unwrap();
    let ds = load_dataset(tmp.path(), &DatasetOptions::default()).unwrap();
    assert_eq!(ds.clips.len(), 1970);
    let count = |s| ds.split(s).count();
    assert_eq!(
        (count(Split::Train), count(Split::Val), count(Split::Test)),
        (1200, 100, 670)
    );
    let max_train = ds.split(Split::Train).map(|c| c.id.clone()).max().unwrap();
    let min_val = ds.split(Split::Val).map(|c| c.id.clone()).min().unwrap();
    let max_val = ds.split(Split::Val).map(|c| c.id.clone()).max().unwrap();
    let min_test = ds.split(Split::Test).map(|c| c.id.clone()).min().unwrap();
    assert!(max_train < min_val && max_val < min_test);
    assert_eq!(min_val, "vid01200_1_3");
}

#[test]
fn msvd_csv_english_rows_only() {
    let tmp = stage(
        "msvd_csv",
        &[
            "videos/mv89psg6zh4_33_46.avi",
            "videos/60x_yxy7Sfw_1_7.avi",
            "videos/8MVo7fje_oE.mp4",
        ],
    );
    let ds = load_dataset(tmp.path(), &DatasetOptions::default()).unwrap();
    assert_eq!(ds.format, DatasetFormat::MsvdCsv);
    assert!(ds.missing.is_empty());
    let bird = clip(&ds.clips, "mv89psg6zh4_33_46");
    assert_eq!(
        bird.captions,
        [
            "A bird is bathing in a sink.",
            "A bird, a parakeet, splashes in water.",
            "The bird says \"chirp\" in the \"sink\"."
        ]
    );
    assert_eq!(
        clip(&ds.clips, "60x_yxy7Sfw_1_7").captions,
        ["A man is cutting potatoes."]
    );
    let cat = clip(&ds.clips, "8MVo7fje_oE_139_145");
    assert_eq!(
        cat.captions,
        ["A cat\nis on a bed."],
        "Hindi and empty rows dropped"
    );
    assert_eq!((cat.start, cat.end), (Some(139.0), Some(145.0)));
    // 3 sources sorted: 60x…, 8MV…, mv89…: round(3·1200/1970) = 2 train, 0 val, 1 test.
    assert_eq!(clip(&ds.clips, "60x_yxy7Sfw_1_7").split, Split::Train);
    assert_eq!(cat.split, Split::Train);
    assert_eq!(bird.split, Split::Test);
}

#[test]
fn vatex_json_split_from_file_name() {
    let tmp = stage(
        "vatex",
        &[
            "videos/Ptf_2VRj-V0_000122_000132.mp4",
            "videos/--_1tCJZjD0.mp4",
        ],
    );
    let ds = load_dataset(tmp.path(), &DatasetOptions::default()).unwrap();
    assert_eq!(ds.format, DatasetFormat::Vatex);
    assert_eq!(ds.clips.len(), 2);
    let dance = clip(&ds.clips, "Ptf_2VRj-V0_000122_000132");
    assert_eq!(dance.split, Split::Train);
    assert_eq!(
        dance.captions,
        [
            "People are dancing in a large ballroom.",
            "Couples waltz around a dance floor."
        ]
    );
    assert_eq!((dance.start, dance.end), (None, None));
    let drums = clip(&ds.clips, "--_1tCJZjD0_000030_000040");
    assert_eq!((drums.start, drums.end), (Some(30.0), Some(40.0)));
    assert_eq!(ds.missing.len(), 1);
    assert!(
        ds.missing[0]
            .to_string_lossy()
            .contains("G9zN5TTuGO4_000179_000189")
    );
    // The validation file alone gives val clips.
    fs::write(tmp.path().join("videos/G9zN5TTuGO4.webm"), b"x").unwrap();
    let val = load_dataset(
        &tmp.path().join("vatex_validation_v1.0.json"),
        &DatasetOptions::default(),
    )
    .unwrap();
    assert_eq!(val.clips.len(), 1);
    assert_eq!(val.clips[0].split, Split::Val);
    assert_eq!(
        (val.clips[0].start, val.clips[0].end),
        (Some(179.0), Some(189.0))
    );
}

#[test]
fn videos_dir_option_and_format_override() {
    let tmp = stage("jsonl", &[]);
    let elsewhere = tempfile::tempdir().unwrap();
    fs::write(elsewhere.path().join("kitchen.mp4"), b"x").unwrap();
    let renamed = tmp.path().join("clips.txt");
    fs::rename(tmp.path().join("annotations.jsonl"), &renamed).unwrap();
    let err = err_text(&renamed, &DatasetOptions::default());
    assert!(
        err.contains("clips.txt") && err.contains("--format"),
        "{err}"
    );
    let opts = DatasetOptions {
        format: Some(DatasetFormat::Jsonl),
        videos: Some(elsewhere.path().to_path_buf()),
    };
    let ds = load_dataset(&renamed, &opts).unwrap();
    assert_eq!(ds.clips.len(), 2, "both kitchen windows found in --videos");
    assert!(
        ds.clips
            .iter()
            .all(|c| c.video == elsewhere.path().join("kitchen.mp4"))
    );
    assert_eq!(ds.missing.len(), 3);
}

#[test]
fn no_video_found_is_fatal_and_names_where_it_looked() {
    let tmp = stage("msrvtt", &[]);
    let err = err_text(tmp.path(), &DatasetOptions::default());
    assert!(err.contains("none of the 4 annotated videos"), "{err}");
    assert!(err.contains("--videos"), "{err}");
}

#[test]
fn ambiguous_directory_is_an_error() {
    let tmp = stage("jsonl", &[]);
    fs::rename(
        tmp.path().join("annotations.jsonl"),
        tmp.path().join("clips.jsonl"),
    )
    .unwrap();
    fs::copy(
        fixture("msvd_csv/MSR Video Description Corpus.csv"),
        tmp.path().join("msvd.csv"),
    )
    .unwrap();
    let err = err_text(tmp.path(), &DatasetOptions::default());
    assert!(
        err.contains("several formats") && err.contains("msvd.csv"),
        "{err}"
    );
    let empty = tempfile::tempdir().unwrap();
    let err = err_text(empty.path(), &DatasetOptions::default());
    assert!(err.contains("no annotation file"), "{err}");
    let err = err_text(&empty.path().join("nope.jsonl"), &DatasetOptions::default());
    assert!(err.contains("nope.jsonl"), "{err}");
}

#[test]
fn malformed_files_name_the_file_and_position() {
    let opts = DatasetOptions::default();
    for (file, needles) in [
        ("broken_line3.jsonl", &["broken_line3.jsonl", "line 3"][..]),
        ("bad_split.jsonl", &["bad_split.jsonl", "line 1", "holdout"]),
        (
            "bad_window.jsonl",
            &["bad_window.jsonl", "line 1", "not after its start"],
        ),
        (
            "truncated_videodatainfo.json",
            &["truncated_videodatainfo.json", "line 7"],
        ),
        (
            "AllVideoDescriptions.txt",
            &["AllVideoDescriptions.txt", "line 3", "nocaptionhere"],
        ),
        (
            "wrong_fields.csv",
            &["wrong_fields.csv", "line 3", "7 fields"],
        ),
        (
            "vatex_bad_id_training.json",
            &["vatex_bad_id_training.json", "item 1", "no-window-here"],
        ),
    ] {
        let err = err_text(&fixture("bad").join(file), &opts);
        for needle in needles {
            assert!(err.contains(needle), "{file}: {needle:?} not in {err:?}");
        }
    }
}

#[test]
fn split_names_parse() {
    assert_eq!("validate".parse::<Split>().unwrap(), Split::Val);
    assert_eq!(
        serde_json::from_str::<Split>("\"validate\"").unwrap(),
        Split::Val
    );
    assert_eq!(serde_json::to_string(&Split::Val).unwrap(), "\"val\"");
    assert!("dev".parse::<Split>().is_err());
}

#[test]
fn annotations_jsonl_wins_and_extra_fields_are_ignored() {
    let tmp = stage("jsonl", &["videos/kitchen.mp4", "videos/synth_0001.mp4"]);
    // A line as the synth generator writes it: extra `params`, f32 times, its own id.
    fs::write(
        tmp.path().join("compositional.jsonl"),
        r#"{"video": "videos/synth_0001.mp4", "start": 0.0, "end": 4.0, "captions": ["a red ball rolls left"], "split": "test", "compositional": true, "id": "synth_0001", "params": {"seed": 7, "objects": [{"kind": "ball"}]}}"#,
    )
    .unwrap();
    let ds = load_dataset(tmp.path(), &DatasetOptions::default()).unwrap();
    assert!(
        ds.clips.iter().all(|c| c.id != "synth_0001"),
        "compositional.jsonl is not merged in"
    );
    let comp = load_dataset(
        &tmp.path().join("compositional.jsonl"),
        &DatasetOptions::default(),
    )
    .unwrap();
    assert_eq!(comp.clips.len(), 1);
    assert_eq!(comp.clips[0].id, "synth_0001");
    assert_eq!(comp.clips[0].split, Split::Test);
    assert_eq!(
        (comp.clips[0].start, comp.clips[0].end),
        (Some(0.0), Some(4.0))
    );
}

#[test]
fn empty_captions_are_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    for v in ["a.mp4", "b.mp4"] {
        fs::write(tmp.path().join(v), b"x").unwrap();
    }
    let ann = tmp.path().join("annotations.jsonl");
    fs::write(
        &ann,
        concat!(
            r#"{"video": "a.mp4", "captions": ["a dog runs", "", "   "]}"#,
            "\n",
            r#"{"video": "b.mp4", "caption": "\t", "split": "val"}"#,
            "\n"
        ),
    )
    .unwrap();
    let ds = load_dataset(&ann, &DatasetOptions::default()).unwrap();
    assert_eq!(ds.empty_captions, 3);
    assert_eq!(clip(&ds.clips, "a.mp4").captions, ["a dog runs"]);
    assert!(clip(&ds.clips, "b.mp4").captions.is_empty());
    // MSVD's text format: an id with nothing after it is an empty caption, not an error.
    let txt = tmp.path().join("AllVideoDescriptions.txt");
    fs::write(&txt, "vid_1_2 a cat sits\nvid_1_2   \nvid_1_2\n").unwrap();
    let opts = DatasetOptions {
        videos: Some(tmp.path().to_path_buf()),
        ..DatasetOptions::default()
    };
    fs::write(tmp.path().join("vid_1_2.mp4"), b"x").unwrap();
    let ds = load_dataset(&txt, &opts).unwrap();
    assert_eq!(ds.empty_captions, 2);
    assert_eq!(clip(&ds.clips, "vid_1_2").captions, ["a cat sits"]);
}

#[test]
fn non_utf8_annotations_name_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let ann = tmp.path().join("annotations.jsonl");
    let mut bytes = br#"{"video": "a.mp4", "caption": "fine"}"#.to_vec();
    bytes.extend_from_slice(b"\n{\"video\": \"b.mp4\", \"caption\": \"caf\xe9\"}\n");
    fs::write(&ann, bytes).unwrap();
    let err = err_text(&ann, &DatasetOptions::default());
    for needle in ["annotations.jsonl", "line 2", "not valid UTF-8", "0xe9"] {
        assert!(err.contains(needle), "{needle:?} not in {err:?}");
    }
}

#[test]
fn a_clip_id_found_twice_names_both_files() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("video7.mp4"), b"x").unwrap();
    let record = |split: &str| {
        serde_json::json!({
            "videos": [{"video_id": "video7", "split": split}],
            "sentences": [{"video_id": "video7", "caption": "a man sings"}],
        })
        .to_string()
    };
    fs::write(
        tmp.path().join("train_val_videodatainfo.json"),
        record("train"),
    )
    .unwrap();
    fs::write(tmp.path().join("test_videodatainfo.json"), record("test")).unwrap();
    let err = err_text(tmp.path(), &DatasetOptions::default());
    for needle in [
        "\"video7\" appears twice",
        "test_videodatainfo.json: videos[0]",
        "train_val_videodatainfo.json: videos[0]",
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err:?}");
    }
}

#[test]
fn msrvtt_without_times_reads_whole_clips() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("video7.mp4"), b"x").unwrap();
    fs::write(
        tmp.path().join("videodatainfo.json"),
        serde_json::json!({
            "videos": [{"video_id": "video7", "split": "validate", "id": 7}],
            "sentences": [{"video_id": "video7", "caption": "a man sings", "sen_id": 1}],
        })
        .to_string(),
    )
    .unwrap();
    let ds = load_dataset(tmp.path(), &DatasetOptions::default()).unwrap();
    let c = clip(&ds.clips, "video7");
    assert_eq!((c.start, c.end, c.split), (None, None, Split::Val));
    assert_eq!(c.captions, ["a man sings"]);
}
