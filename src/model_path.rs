//! Where model directories are found, in one documented order, from any working directory:
//!
//! 1. a directory given on the command line (`--model DIR`, `--encoder DIR`);
//! 2. for the encoder a decoder names: the folder holding that decoder;
//! 3. `$VIDCAP_MODELS`;
//! 4. the user's data directory (`$XDG_DATA_HOME/vidcap/models`, by default
//!    `~/.local/share/vidcap/models`);
//! 5. `<prefix>/share/vidcap/models` when the binary runs from `<prefix>/bin` (`make install`);
//! 6. the `models/` folder of the checkout the binary was built from, while the binary runs
//!    from inside that checkout (`target/release/vidcap`, tests): development only, so an
//!    installed or copied binary never depends on a checkout.
//!
//! A model directory is a folder with a `config.json`. Nothing else is guessed: a `models/`
//! folder that happens to sit above the binary is not a root.
use std::fmt;
use std::path::{Path, PathBuf};

/// Environment variable naming a models root searched before the user's data directory.
pub const ENV: &str = "VIDCAP_MODELS";

/// Why a folder is searched; shown by `vidcap models list` and in "not found" errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Named on the command line.
    Given,
    /// The folder that holds the decoder naming this encoder.
    BesideDecoder,
    /// `$VIDCAP_MODELS`.
    Env,
    /// The user's data directory.
    User,
    /// `<prefix>/share/vidcap/models` beside an installed binary.
    Prefix,
    /// The checkout the binary was built from.
    Checkout,
}

impl Origin {
    /// Stable identifier used in JSON output.
    pub fn id(self) -> &'static str {
        match self {
            Origin::Given => "given",
            Origin::BesideDecoder => "beside-decoder",
            Origin::Env => "env",
            Origin::User => "user",
            Origin::Prefix => "prefix",
            Origin::Checkout => "checkout",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Given => "given on the command line",
            Origin::BesideDecoder => "beside the decoder",
            Origin::Env => "$VIDCAP_MODELS",
            Origin::User => "user data directory",
            Origin::Prefix => "installation prefix",
            Origin::Checkout => "checkout (development)",
        })
    }
}

/// A folder searched for model directories.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    pub origin: Origin,
    pub dir: PathBuf,
}

/// A model directory and why it was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub dir: PathBuf,
    pub origin: Origin,
}

/// `$XDG_DATA_HOME/vidcap/models` (or the platform's data directory); where users install
/// models without root and where `vidcap models import` suggests writing.
pub fn user_root() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("vidcap").join("models"))
}

/// `<prefix>/share/vidcap/models` when this executable is `<prefix>/bin/vidcap`.
fn prefix_root() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?.canonicalize().ok()?;
    let bin = exe.parent()?;
    if bin.file_name()? != "bin" {
        return None;
    }
    Some(bin.parent()?.join("share/vidcap/models"))
}

/// The checkout's `models/` when this executable lives inside the checkout it was built from.
fn checkout_root() -> Option<PathBuf> {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).canonicalize().ok()?;
    let exe = std::env::current_exe().ok()?.canonicalize().ok()?;
    exe.starts_with(&checkout).then(|| checkout.join("models"))
}

/// The roots of steps 3–6, in order, whether or not they exist (errors list them all).
pub fn roots() -> Vec<Root> {
    let mut roots = Vec::new();
    if let Some(dir) = std::env::var_os(ENV).filter(|v| !v.is_empty()) {
        roots.push(Root {
            origin: Origin::Env,
            dir: dir.into(),
        });
    }
    if let Some(dir) = user_root() {
        roots.push(Root {
            origin: Origin::User,
            dir,
        });
    }
    if let Some(dir) = prefix_root() {
        roots.push(Root {
            origin: Origin::Prefix,
            dir,
        });
    }
    if let Some(dir) = checkout_root() {
        roots.push(Root {
            origin: Origin::Checkout,
            dir,
        });
    }
    roots
}

/// True when `dir` holds a model (a `config.json`).
pub fn is_model_dir(dir: &Path) -> bool {
    dir.join("config.json").is_file()
}

/// A model that could not be found, with every place searched.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("{0}: no such model directory")]
    NoSuchDir(PathBuf),
    #[error("{0}: not a model directory (no config.json)")]
    NotAModel(PathBuf),
    #[error("{}", not_found_message(.name, .searched, .fill))]
    NotFound {
        name: String,
        searched: Vec<Root>,
        /// The command that fills the model in, for the message.
        fill: String,
    },
}

fn not_found_message(name: &str, searched: &[Root], fill: &str) -> String {
    let mut msg = format!("model `{name}` not found; searched, in order:");
    for root in searched {
        msg.push_str(&format!(
            "\n  {} ({})",
            root.dir.join(name).display(),
            root.origin
        ));
    }
    if !searched.iter().any(|r| r.origin == Origin::Env) {
        msg.push_str(&format!("\n  (${ENV} is not set)"));
    }
    msg.push_str(&format!("\n{fill}"));
    msg
}

/// The hint printed when a model is missing.
fn fill_hint(name: &str) -> String {
    let user = user_root().map_or_else(
        || "~/.local/share/vidcap/models".to_string(),
        |p| p.display().to_string(),
    );
    match name {
        "efficientnet-lite0" => format!(
            "Fill it with `make models` (checkout) or `make install`, or import the weights \
             yourself: `vidcap models import CKPT --arch efficientnet-lite0 --out {user}/efficientnet-lite0` \
             (README: 'Installing vidcap for use anywhere')"
        ),
        "synth-decoder" => format!(
            "It ships with vidcap: run `make install`, or copy the checkout's models/synth-decoder \
             to {user}/synth-decoder (README: 'Installing vidcap for use anywhere')"
        ),
        _ => format!(
            "Give a model directory, or put `{name}` in {user} (e.g. `vidcap train … --out {user}/{name}`)"
        ),
    }
}

/// Looks a model up: an existing directory path is used as is; a bare name is searched in
/// `beside` (the folder of the decoder that names it) and then in [`roots`].
pub fn locate(name_or_dir: &str, beside: Option<&Path>) -> Result<Located, LookupError> {
    let path = Path::new(name_or_dir);
    let is_bare_name = path.components().count() == 1 && !name_or_dir.starts_with('.');
    if path.is_dir() || !is_bare_name {
        if !path.exists() {
            return Err(LookupError::NoSuchDir(path.to_path_buf()));
        }
        if !is_model_dir(path) {
            return Err(LookupError::NotAModel(path.to_path_buf()));
        }
        return Ok(Located {
            dir: path.to_path_buf(),
            origin: Origin::Given,
        });
    }
    let mut searched: Vec<Root> = beside
        .map(|dir| Root {
            origin: Origin::BesideDecoder,
            dir: dir.to_path_buf(),
        })
        .into_iter()
        .collect();
    searched.extend(roots());
    for root in &searched {
        let dir = root.dir.join(name_or_dir);
        if is_model_dir(&dir) {
            return Ok(Located {
                dir,
                origin: root.origin,
            });
        }
    }
    Err(LookupError::NotFound {
        name: name_or_dir.to_string(),
        searched,
        fill: fill_hint(name_or_dir),
    })
}

/// Every model directory under every root, in search order (a name found twice is listed
/// twice; the first one is the one used).
pub fn installed() -> Vec<(String, Located)> {
    let mut found = Vec::new();
    for root in roots() {
        let Ok(entries) = std::fs::read_dir(&root.dir) else {
            continue;
        };
        let mut names: Vec<(String, PathBuf)> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| is_model_dir(p))
            .filter_map(|p| Some((p.file_name()?.to_str()?.to_string(), p)))
            .collect();
        names.sort();
        found.extend(names.into_iter().map(|(name, dir)| {
            (
                name,
                Located {
                    dir,
                    origin: root.origin,
                },
            )
        }));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_taken_as_given_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let plain = tmp.path().join("plain");
        std::fs::create_dir(&plain).unwrap();
        let s = plain.to_str().unwrap();
        assert!(matches!(locate(s, None), Err(LookupError::NotAModel(_))));
        std::fs::write(plain.join("config.json"), "{}").unwrap();
        assert_eq!(locate(s, None).unwrap().origin, Origin::Given);
        let missing = tmp.path().join("missing");
        assert!(matches!(
            locate(missing.to_str().unwrap(), None),
            Err(LookupError::NoSuchDir(_))
        ));
    }

    #[test]
    fn a_name_is_found_beside_the_decoder_first_and_misses_name_every_place() {
        let tmp = tempfile::tempdir().unwrap();
        let enc = tmp.path().join("no-such-encoder-here");
        std::fs::create_dir(&enc).unwrap();
        std::fs::write(enc.join("config.json"), "{}").unwrap();
        let found = locate("no-such-encoder-here", Some(tmp.path())).unwrap();
        assert_eq!((found.dir, found.origin), (enc, Origin::BesideDecoder));

        let err = locate("no-such-model-anywhere", Some(tmp.path())).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(
                &tmp.path()
                    .join("no-such-model-anywhere")
                    .display()
                    .to_string()
            )
        );
        for root in roots() {
            assert!(
                msg.contains(
                    &root
                        .dir
                        .join("no-such-model-anywhere")
                        .display()
                        .to_string()
                ),
                "{msg}"
            );
        }
        assert!(msg.contains("vidcap train"), "{msg}");
    }
}
