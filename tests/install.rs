//! `make install` as a user meets it: the installed binary captions a video from `/` with no
//! environment pointing at the checkout, finds its models under the prefix, ships completions
//! and man pages, and `make uninstall` takes it all away. A loose copy of the binary says
//! where it looked for a missing model, and finds an encoder placed beside its decoder.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn checkout() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn sample() -> PathBuf {
    checkout().join("samples/testsrc2_320x240_4s.mp4")
}

/// Runs `bin` from `/` with a fresh, empty home and no model variables.
fn run_from_root(bin: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .current_dir("/")
        .env("HOME", home)
        .env_remove("XDG_DATA_HOME")
        .env_remove("VIDCAP_MODELS")
        .output()
        .unwrap()
}

fn install_script(action: &str, prefix: &Path) -> Output {
    Command::new(checkout().join("scripts/install.sh"))
        .args([action, prefix.to_str().unwrap()])
        .env("VIDCAP_BIN", env!("CARGO_BIN_EXE_vidcap"))
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn installed_binary_captions_from_anywhere_and_uninstall_removes_everything() {
    if !checkout()
        .join("models/efficientnet-lite0/model.safetensors")
        .is_file()
    {
        panic!("models/efficientnet-lite0 is missing: run `make models`");
    }
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("prefix");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();

    let out = install_script("install", &prefix);
    assert!(out.status.success(), "install: {}", text(&out.stderr));
    let manifest = std::fs::read_to_string(prefix.join("share/vidcap/install-manifest.txt"))
        .expect("install writes a manifest");
    let installed: Vec<&str> = manifest.lines().collect();
    for expected in [
        "bin/vidcap",
        "share/vidcap/models/synth-decoder/config.json",
        "share/vidcap/models/synth-decoder/familiarity.safetensors",
        "share/vidcap/models/efficientnet-lite0/model.safetensors",
        "share/bash-completion/completions/vidcap",
        "share/zsh/site-functions/_vidcap",
        "share/fish/vendor_completions.d/vidcap.fish",
        "share/man/man1/vidcap.1",
        "share/man/man1/vidcap-caption.1",
        "share/man/man1/vidcap-models-list.1",
    ] {
        assert!(
            installed.contains(&expected),
            "{expected} not in {installed:?}"
        );
        assert!(prefix.join(expected).is_file(), "{expected} missing");
    }
    // The generated files describe this CLI, not an empty shell.
    let bash =
        std::fs::read_to_string(prefix.join("share/bash-completion/completions/vidcap")).unwrap();
    assert!(bash.contains("--min-familiarity") && bash.contains("caption"));
    let fish = std::fs::read_to_string(prefix.join("share/fish/vendor_completions.d/vidcap.fish"))
        .unwrap();
    assert!(fish.contains("-l beam"), "{fish}");
    let man = std::fs::read_to_string(prefix.join("share/man/man1/vidcap-caption.1")).unwrap();
    assert!(
        man.starts_with(".ie") || man.contains(".TH"),
        "not roff: {man:.200}"
    );
    assert!(man.contains("beam"));
    assert!(
        !installed.iter().any(|f| f.contains("generate")),
        "the hidden generator has no man page"
    );

    // From `/`, with an empty home: the models under the prefix are the ones found.
    let bin = prefix.join("bin/vidcap");
    let out = run_from_root(&bin, &home, &["models", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing: Value = serde_json::from_slice(&out.stdout).unwrap();
    let prefix_models = prefix.canonicalize().unwrap().join("share/vidcap/models");
    for name in ["synth-decoder", "efficientnet-lite0"] {
        let row = listing["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name && r["used"] == true)
            .unwrap_or_else(|| panic!("{name} not listed as used: {listing:#}"));
        assert_eq!(row["origin"], "prefix", "{row}");
        assert_eq!(
            row["path"].as_str().unwrap(),
            prefix_models.join(name).to_str().unwrap()
        );
    }
    let order: Vec<&str> = listing["search_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["origin"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["user", "prefix"],
        "no checkout root for an installed binary"
    );

    let video = sample();
    let out = run_from_root(&bin, &home, &["caption", video.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let caption = doc[0]["caption"]
        .as_str()
        .unwrap_or_else(|| panic!("no caption in {doc:#}"));
    assert!(caption.split_whitespace().count() >= 2, "{doc:#}");

    // A loose copy outside any prefix: a missing model names every place searched and the
    // command that fills it.
    let loose_dir = tmp.path().join("loose");
    std::fs::create_dir_all(&loose_dir).unwrap();
    let loose = loose_dir.join("vidcap");
    std::fs::copy(&bin, &loose).unwrap();
    let out = run_from_root(&loose, &home, &["caption", video.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("model `synth-decoder` not found"), "{err}");
    let user_dir = home.join(".local/share/vidcap/models/synth-decoder");
    assert!(err.contains(user_dir.to_str().unwrap()), "{err}");
    assert!(err.contains("$VIDCAP_MODELS is not set"), "{err}");
    assert!(err.contains("make install"), "{err}");
    assert_eq!(err.matches("error:").count(), 1, "said once: {err}");

    // `--model DIR`: the encoder the decoder names is found beside it.
    let decoder = prefix_models.join("synth-decoder");
    let out = run_from_root(
        &loose,
        &home,
        &[
            "caption",
            video.to_str().unwrap(),
            "--model",
            decoder.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The user's data directory comes before the prefix.
    let user_models = home.join(".local/share/vidcap/models");
    std::fs::create_dir_all(user_models.join("synth-decoder")).unwrap();
    std::fs::copy(
        decoder.join("config.json"),
        user_models.join("synth-decoder/config.json"),
    )
    .unwrap();
    let out = run_from_root(&bin, &home, &["models", "list", "--json"]);
    let listing: Value = serde_json::from_slice(&out.stdout).unwrap();
    let used: Vec<&Value> = listing["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == "synth-decoder")
        .collect();
    assert_eq!(used.len(), 2, "{listing:#}");
    assert_eq!(
        (&used[0]["origin"], &used[0]["used"]),
        (&"user".into(), &true.into())
    );
    assert_eq!(
        (&used[1]["origin"], &used[1]["used"]),
        (&"prefix".into(), &false.into())
    );

    let out = install_script("uninstall", &prefix);
    assert!(out.status.success(), "uninstall: {}", text(&out.stderr));
    for file in &installed {
        assert!(!prefix.join(file).exists(), "{file} left behind");
    }
    assert!(!prefix.join("share/vidcap").exists());
}
