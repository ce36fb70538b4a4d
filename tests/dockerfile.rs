//! The Dockerfile cannot be built here (no container registry), so what can be checked is:
//! its runtime stage installs exactly the Debian packages that own the shared libraries the
//! built binary needs (`readelf` for the direct dependencies, `ldd` for where they resolve,
//! `dpkg -S` for the owner), apart from those every Debian base has (what its essential packages need),
//! and the files it installs for run time are the ones the binary reads.
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn stdout(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `ARG NAME="a b c"` in `stage` as a set of words.
fn arg_list(stage: &str, name: &str) -> BTreeSet<String> {
    let prefix = format!("ARG {name}=");
    let line = stage
        .lines()
        .find_map(|l| l.trim().strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no `ARG {name}=` in the runtime stage"));
    line.trim_matches('"')
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The Debian package that owns `path` (dpkg records the path it unpacked, which may be
/// the link, its target, or the target without `/usr` on a merged-/usr system).
fn owner(path: &str) -> String {
    let real = std::fs::canonicalize(path).unwrap().display().to_string();
    let mut candidates = vec![path.to_string(), real.clone()];
    candidates.extend(real.strip_prefix("/usr").map(str::to_string));
    for candidate in &candidates {
        let out = Command::new("dpkg")
            .args(["-S", candidate])
            .output()
            .unwrap();
        if out.status.success() {
            let line = String::from_utf8(out.stdout).unwrap();
            return line.split(':').next().unwrap().trim().to_string();
        }
    }
    panic!("no Debian package owns {path} (tried {candidates:?})");
}

/// Every installed package that an `Essential: yes` package needs, directly or not: what any
/// Debian base image (bookworm-slim included) already has.
fn base_packages() -> BTreeSet<String> {
    let table = stdout(Command::new("dpkg-query").args([
        "-W",
        "-f=${Package}\t${Essential}\t${Pre-Depends}, ${Depends}\n",
    ]));
    let mut deps = std::collections::BTreeMap::new();
    let mut todo = Vec::new();
    for line in table.lines() {
        let mut fields = line.split('\t');
        let (Some(name), Some(essential), Some(needs)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let needs: Vec<String> = needs
            .split([',', '|'])
            .filter_map(|d| d.split_whitespace().next())
            .map(|d| d.split(':').next().unwrap().to_string())
            .collect();
        if essential == "yes" {
            todo.push(name.to_string());
        }
        deps.insert(name.to_string(), needs);
    }
    let mut base = BTreeSet::new();
    while let Some(name) = todo.pop() {
        if base.insert(name.clone()) {
            todo.extend(deps.get(&name).into_iter().flatten().cloned());
        }
    }
    base
}

#[test]
fn runtime_stage_installs_what_the_binary_links() {
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap();
    let stages: Vec<&str> = dockerfile.split("\nFROM ").skip(1).collect();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    assert!(
        stages[0].starts_with("rust:1-bookworm AS build"),
        "{}",
        stages[0]
    );
    assert!(stages[1].starts_with("debian:bookworm-slim AS runtime"));
    let runtime = stages[1];
    assert!(runtime.contains("COPY --from=build /opt/vidcap /usr/local"));

    let bin = env!("CARGO_BIN_EXE_vidcap");
    let needed: Vec<String> = stdout(Command::new("readelf").args(["-d", bin]))
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split('[').nth(1)?.trim_end_matches(']').to_string()))
        .collect();
    assert!(
        needed.iter().any(|l| l.starts_with("libavcodec")),
        "{needed:?}"
    );
    let ldd = stdout(Command::new("ldd").arg(bin));
    let mut packages = BTreeSet::new();
    for lib in &needed {
        let path = ldd
            .lines()
            .find_map(|l| {
                let (name, rest) = l.trim().split_once(" => ")?;
                (name == lib).then(|| rest.split(" (").next().unwrap().to_string())
            })
            .or_else(|| {
                // The loader itself appears by path only.
                ldd.lines()
                    .map(str::trim)
                    .find(|l| l.starts_with('/') && l.contains(lib.as_str()))
                    .map(|l| l.split(" (").next().unwrap().to_string())
            })
            .unwrap_or_else(|| panic!("ldd does not resolve {lib}:\n{ldd}"));
        packages.insert(owner(&path));
    }
    let base = base_packages();
    assert!(base.contains("libc6"), "{base:?}");
    let packages: BTreeSet<String> = packages.difference(&base).cloned().collect();
    assert_eq!(
        arg_list(runtime, "RUNTIME_LIBS"),
        packages,
        "the runtime stage's libraries against what {bin} links"
    );

    // The only run-time file package: the contact sheet's font, which it must provide.
    let files = arg_list(runtime, "RUNTIME_FILES");
    assert_eq!(files, BTreeSet::from(["fonts-dejavu-core".to_string()]));
    let listed = stdout(Command::new("dpkg").args(["-L", "fonts-dejavu-core"]));
    let font = vidcap::output::sheet::FONT_CANDIDATES[0];
    assert!(
        listed.lines().any(|l| l == font),
        "fonts-dejavu-core does not ship {font}, the font the sheet looks for first"
    );
}
