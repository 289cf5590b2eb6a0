//! `bramble validate [RECIPE]`.

use super::{Reported, styled_stderr};
use crate::diagnostic::{Severity, render};
use crate::recipe::{self, DEFAULT_RECIPE, DEFAULT_RECIPE_NAME, OsSource};
use anyhow::{Context, Result};
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
    eprint!("{}", render(&shown, &source, &name, styled_stderr()));
    let count = |s: Severity| parsed.diagnostics.iter().filter(|d| d.severity == s).count();
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    let Some(recipe) = parsed.recipe else {
        return Err(Reported(format!("{name}: {errors} error(s), {warnings} warning(s); nothing was changed")).into());
    };
    let models: Vec<String> = recipe
        .models()
        .into_iter()
        .map(|m| format!("{}×{m}", recipe.clients.iter().filter(|c| c.model == m).count()))
        .collect();
    let os = match &recipe.os {
        OsSource::Catalog(name) => name.clone(),
        OsSource::Url { url, .. } => url.clone(),
    };
    println!(
        "{name}: ok ({warnings} warning(s)): lab `{}`, {} client(s) ({}), dhcp {}, os {os}",
        recipe.lab.name,
        recipe.clients.len(),
        models.join(", "),
        recipe.server.dhcp
    );
    Ok(())
}
