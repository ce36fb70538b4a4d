//! Hostile, truncated and garbled checkpoints: every one refused with a clear error, without
//! executing anything, without a panic and without allocating what the file merely declares.
mod util;

use std::panic::{AssertUnwindSafe, catch_unwind};

use vidcap::checkpoint::{CheckpointError, parse_checkpoint, read_checkpoint_tensors};

const PWNED_MARKER: &str = "/tmp/vidcap-checkpoint-test-pwned";

fn refused(name: &str) -> String {
    let path = util::checkpoint::fixture(&format!("hostile/{name}"));
    let err = read_checkpoint_tensors(&path).expect_err(name);
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "{name}: error does not name the file: {msg}"
    );
    msg
}

#[test]
fn pickles_calling_other_globals_are_refused_and_nothing_runs() {
    let _ = std::fs::remove_file(PWNED_MARKER);
    for (name, global) in [
        ("os_system_legacy.pt", "posix.system"),
        ("os_system_zip.pt", "posix.system"),
        ("eval_legacy.pt", "__builtin__.eval"),
    ] {
        let msg = refused(name);
        assert!(
            msg.contains(&format!("refused global {global}")),
            "{name}: {msg}"
        );
    }
    assert!(
        !std::path::Path::new(PWNED_MARKER).exists(),
        "a hostile pickle created {PWNED_MARKER}"
    );
}

#[test]
fn sizes_beyond_the_file_are_refused() {
    for (name, needle) in [
        ("huge_storage_legacy.pt", "only"),
        ("huge_shape_legacy.pt", "overflows"),
        ("huge_stride_legacy.pt", "reaches past its storage"),
        ("huge_offset_legacy.pt", "reaches past its storage"),
        ("offset_past_end_legacy.pt", "reaches past its storage"),
        ("negative_size_legacy.pt", "out of range"),
        ("unknown_key_legacy.pt", "no tensor uses it"),
        ("short_storage_zip.pt", "truncated"),
        ("zip64_huge_directory_zip.pt", "bad zip archive"),
        ("shared_storage_bomb_legacy.pt", "more than 8x the file"),
    ] {
        let msg = refused(name);
        assert!(msg.contains(needle), "{name}: {msg}");
    }
    // Nothing above may have reserved what the files declare (2^61 floats, 2^93 elements,
    // 2^40 zip entries):
    // the peak resident set of this test process stays small.
    if let Some(peak_kb) = peak_rss_kb() {
        assert!(peak_kb < 512 * 1024, "peak RSS {peak_kb} kB");
    }
}

#[test]
fn wrong_magic_number_is_refused() {
    let msg = refused("bad_magic_legacy.pt");
    assert!(msg.contains("wrong magic number"), "{msg}");
}

#[test]
fn not_a_checkpoint_at_all() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("empty.pt", &b""[..]),
        ("text.pt", &b"hello, world\n"[..]),
        ("pickle_of_int.pt", &b"\x80\x02K\x05."[..]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = read_checkpoint_tensors(&path).unwrap_err();
        assert!(
            matches!(err, CheckpointError::Unrecognised { .. }),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
    let err = read_checkpoint_tensors(dir.path()).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    let missing = dir.path().join("missing.pt");
    let err = read_checkpoint_tensors(&missing).unwrap_err();
    assert!(matches!(err, CheckpointError::Io { .. }), "{err}");
}

/// The legacy header pickles (magic, protocol, empty sys_info), `object`, no storage keys.
fn legacy_with_object(object: &[u8]) -> Vec<u8> {
    let mut v = b"\x80\x02\x8a\x0a".to_vec();
    v.extend(0x1950a86a20f9469cfc6cu128.to_le_bytes()[..10].iter());
    v.extend(b".\x80\x02M\xe9\x03.\x80\x02}.");
    v.extend(object);
    v.extend(b"\x80\x02].");
    v
}

#[test]
fn deep_nesting_and_memo_abuse_are_bounded() {
    // 200 000 nested lists.
    let mut deep = b"\x80\x02".to_vec();
    deep.extend(std::iter::repeat_n(b']', 200_000));
    deep.extend(std::iter::repeat_n(b'a', 199_999));
    deep.push(b'.');
    let (_, msg) = parse_checkpoint(&legacy_with_object(&deep)).unwrap_err();
    assert!(msg.contains("nested deeper"), "{msg}");

    // "Billion laughs": a list holding its memoised predecessor twice, 40 times over
    // (2^40 leaves if copied). Shared, it costs 40 small lists; then it is not a dict.
    let mut laughs = b"\x80\x02]q\x000".to_vec();
    for i in 0..40u8 {
        laughs.extend([b'h', i, b'h', i, b'\x86', b'q', i + 1, b'0']);
    }
    laughs.extend(b"h\x28.");
    let (_, msg) = parse_checkpoint(&legacy_with_object(&laughs)).unwrap_err();
    assert!(msg.contains("not a dict"), "{msg}");

    // Copy-on-write abuse: a list of 100 000 items duplicated on the stack and appended to
    // 100 000 times, each append forcing a copy of the shared list.
    let mut copies = b"\x80\x02](".to_vec();
    copies.extend(std::iter::repeat_n(b'N', 100_000));
    copies.push(b'e');
    for _ in 0..100_000 {
        copies.extend(b"2Na");
    }
    copies.push(b'.');
    let (_, msg) = parse_checkpoint(&legacy_with_object(&copies)).unwrap_err();
    assert!(msg.contains("memo abuse"), "{msg}");

    // A memo index near 2^32 allocates nothing; the empty dict it stores holds no tensors.
    let object = b"\x80\x02}r\xff\xff\xff\xff0j\xff\xff\xff\xff.";
    let (_, msg) = parse_checkpoint(&legacy_with_object(object)).unwrap_err();
    assert!(msg.contains("no tensors"), "{msg}");
}

fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn parse_no_panic(bytes: &[u8], what: &str) -> Result<usize, String> {
    catch_unwind(AssertUnwindSafe(|| parse_checkpoint(bytes)))
        .unwrap_or_else(|_| panic!("{what}: the reader panicked"))
        .map(|t| t.len())
        .map_err(|(_, reason)| reason)
}

/// Every proper prefix of both fixtures is refused (both formats need their ends: the zip
/// central directory, the legacy raw storages).
#[test]
fn truncated_at_every_offset_is_refused() {
    for name in ["tiny_legacy.pt", "tiny_zip.pt"] {
        let bytes = std::fs::read(util::checkpoint::fixture(name)).unwrap();
        assert_eq!(parse_no_panic(&bytes, name), Ok(15));
        for len in 0..bytes.len() {
            let r = parse_no_panic(&bytes[..len], &format!("{name} cut at {len}"));
            assert!(r.is_err(), "{name} cut at {len} was accepted");
        }
    }
}

/// Random corruptions (flipped, overwritten, inserted and removed bytes): Ok or a clean Err,
/// never a panic or a hang. Deterministic seed, so a failure repeats.
#[test]
fn garbled_files_never_panic() {
    let mut rng = util::checkpoint::Rng::new(0x5eed);
    for name in ["tiny_legacy.pt", "tiny_zip.pt", "nested_zip.pt"] {
        let original = std::fs::read(util::checkpoint::fixture(name)).unwrap();
        let mut refused = 0;
        for round in 0..1500 {
            let mut bytes = original.clone();
            for _ in 0..1 + rng.below(6) {
                let at = rng.below(bytes.len());
                match rng.below(4) {
                    0 => bytes[at] ^= 1 << rng.below(8),
                    1 => bytes[at] = rng.next() as u8,
                    2 => bytes.insert(at, rng.next() as u8),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            if parse_no_panic(&bytes, &format!("{name} round {round}")).is_err() {
                refused += 1;
            }
        }
        eprintln!("{name}: {refused} of 1500 corruptions refused, the rest still parse");
        assert!(refused > 0);
    }
}

/// The real 18.8 MB legacy checkpoint cut at random places and with random bytes flipped:
/// cuts are always refused, flips never panic.
#[test]
fn real_checkpoint_truncated_or_garbled_never_panics() {
    let Some(pth) = util::checkpoint::real_checkpoint() else {
        return;
    };
    let original = std::fs::read(pth).unwrap();
    let mut rng = util::checkpoint::Rng::new(0xface);
    for _ in 0..30 {
        let len = rng.below(original.len());
        let r = parse_no_panic(&original[..len], &format!("real checkpoint cut at {len}"));
        assert!(r.is_err(), "cut at {len} was accepted");
    }
    let mut bytes = original.clone();
    for round in 0..30 {
        // Mostly in the pickled header, where a flip changes structure rather than a weight.
        let at = if round % 2 == 0 {
            rng.below(40_000)
        } else {
            rng.below(bytes.len())
        };
        let saved = bytes[at];
        bytes[at] ^= 1 << rng.below(8);
        let _ = parse_no_panic(&bytes, &format!("real checkpoint, byte {at} flipped"));
        bytes[at] = saved;
    }
}
