//! `bramble validate [RECIPE]`.

use super::{Reported, styled_stderr, to_stderr};
use crate::diagnostic::{render, summary};
use crate::recipe::{self, DEFAULT_RECIPE, DEFAULT_RECIPE_NAME};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The recipe file; without one, the built-in default recipe is checked
    recipe: Option<PathBuf>,
}

/// Read a recipe file, or the built-in one; returns (display name, text).
pub fn read_recipe(path: Option<&PathBuf>) -> Result<(String, String)> {
    match path {
        None => Ok((DEFAULT_RECIPE_NAME.to_string(), DEFAULT_RECIPE.to_string())),
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read recipe {}", p.display()))?;
            Ok((p.display().to_string(), text))
        }
    }
}

pub fn run(args: Args, quiet: bool) -> Result<()> {
    let (name, source) = read_recipe(args.recipe.as_ref())?;
    let parsed = recipe::parse(&source);
    let shown: Vec<_> = parsed.diagnostics.iter().filter(|d| !quiet || d.is_error()).cloned().collect();
    to_stderr(&render(&shown, &source, &name, styled_stderr()));
    let found = summary(&parsed.diagnostics);
    let Some(recipe) = parsed.recipe else {
        return Err(Reported(format!("{name}: {found}")).into());
    };
    let models: Vec<String> = recipe
        .models()
        .into_iter()
        .map(|m| format!("{}×{m}", recipe.clients.iter().filter(|c| c.model == m).count()))
        .collect();
    let os = recipe.os.describe();
    let note = if parsed.diagnostics.is_empty() { String::new() } else { format!(" ({found})") };
    let n = recipe.clients.len();
    let line = format!(
        "{name}: ok{note}: lab `{}`, {n} client{} ({}), dhcp {}, os {os}\n",
        recipe.lab.name,
        if n == 1 { "" } else { "s" },
        models.join(", "),
        recipe.server.dhcp
    );
    std::io::stdout().write_all(line.as_bytes())?;
    Ok(())
}
