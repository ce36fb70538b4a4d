//! `vidcap generate man DIR | complete-bash | complete-zsh | complete-fish | build-info`: man
//! pages and shell completions built from the clap definitions, for `make install`, and what
//! the benchmarks print about the binary (hidden: packagers and scripts use it).
use std::path::PathBuf;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use super::{Cli, EXIT_OK, Global};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// Man pages (vidcap.1, vidcap-caption.1, …) written into DIR.
    Man {
        /// Folder to write the pages into (created if missing).
        out: PathBuf,
    },
    /// Bash completion script, on stdout.
    CompleteBash,
    /// Zsh completion script (`_vidcap`), on stdout.
    CompleteZsh,
    /// Fish completion script, on stdout.
    CompleteFish,
    /// One line for benchmark logs: version, the SIMD level the kernels dispatch to on this
    /// CPU, and the worker threads.
    BuildInfo,
}

pub fn run(args: Args, _global: &Global) -> anyhow::Result<u8> {
    let shell = match args.what {
        What::Man { out } => {
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            clap_mangen::generate_to(Cli::command(), &out)
                .with_context(|| format!("cannot write man pages into {}", out.display()))?;
            return Ok(EXIT_OK);
        }
        What::CompleteBash => Shell::Bash,
        What::CompleteZsh => Shell::Zsh,
        What::CompleteFish => Shell::Fish,
        What::BuildInfo => {
            println!(
                "vidcap {} simd={} threads={}",
                env!("CARGO_PKG_VERSION"),
                crate::simd::dispatch_level(),
                rayon::current_num_threads()
            );
            return Ok(EXIT_OK);
        }
    };
    clap_complete::generate(shell, &mut Cli::command(), "vidcap", &mut std::io::stdout());
    Ok(EXIT_OK)
}
