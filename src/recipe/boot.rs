//! `[pc]` and `[[menu]]`: what PXE machines boot, checked like every other table. A menu file
//! is named in one string: a path beside the recipe, `https://…#sha256=…`, or
//! `deb:PACKAGE:/path/in/package`.

use super::raw::{Opt, RawMenu, RawPc};
use super::validate::{Report, choice, download};
use super::{
    BiosLoader, Client, ClientBoot, EntryFirmware, FileRef, MenuEntry, MenuKind, Model, OsSource, Pc, UefiLoader,
};
use toml::Spanned;

/// Longest menu label: pxelinux's menu is 80 columns wide with its frame.
const MAX_LABEL: usize = 60;
const MAX_TIMEOUT: i64 = 3600;

/// The PC boot settings, if the lab has PC clients, a `[pc]` table or a menu.
pub(super) fn pc(
    raw: Opt<RawPc>,
    menu: Opt<Vec<Spanned<RawMenu>>>,
    clients: &[Client],
    os: &OsSource,
    r: &mut Report,
) -> Option<Pc> {
    let has_pcs = clients.iter().any(|c| c.model == Model::Pc);
    if raw.is_none() && menu.is_none() && !has_pcs {
        return None;
    }
    for c in clients.iter().filter(|c| c.model == Model::Pc && c.boot == ClientBoot::Os) {
        if !matches!(os, OsSource::Debian(_)) {
            r.error(
                None,
                format!("client `{}` boots the lab's OS as a PC, but {} has no UEFI kernel", c.name, os.describe()),
                "set [os] source = \"debian\" (its arm64 kernel boots UEFI machines), or boot = \"menu\"",
            );
        }
    }
    let raw = raw.map(Spanned::into_inner).unwrap_or_default();
    let bios = choice(
        &raw.bios,
        "bios",
        &[("pxelinux", BiosLoader::Pxelinux), ("ipxe", BiosLoader::Ipxe)],
        "\"pxelinux\" (a syslinux menu) or \"ipxe\" (undionly.kpxe and the iPXE menu)",
        BiosLoader::Pxelinux,
        r,
    );
    let uefi = choice(
        &raw.uefi,
        "uefi",
        &[("ipxe", UefiLoader::Ipxe), ("syslinux", UefiLoader::Syslinux)],
        "\"ipxe\" (ipxe.efi and the iPXE menu) or \"syslinux\" (syslinux.efi and its menu)",
        UefiLoader::Ipxe,
        r,
    );
    let timeout = match raw.timeout {
        None => 10,
        Some(t) if (0..=MAX_TIMEOUT).contains(t.get_ref()) => *t.get_ref() as u32,
        Some(t) => {
            r.error(
                t.span(),
                format!("timeout {} is out of range", t.get_ref()),
                format!("give the seconds the menu waits, 0 to {MAX_TIMEOUT} (0 boots the first entry at once)"),
            );
            10
        }
    };
    let mut entries: Vec<MenuEntry> = Vec::new();
    for (i, item) in menu.map(Spanned::into_inner).unwrap_or_default().into_iter().enumerate() {
        if let Some(e) = menu_entry(i, item, r) {
            entries.push(e);
        }
    }
    if entries.is_empty() {
        entries.push(MenuEntry {
            label: "Boot from local disk".into(),
            kind: MenuKind::Local,
            files: Vec::new(),
            append: None,
            firmware: None,
        });
    }
    let default = match raw.default {
        None => 0,
        Some(d) => match entries.iter().position(|e| e.label == *d.get_ref()) {
            Some(i) => i,
            None => {
                let labels: Vec<String> = entries.iter().map(|e| format!("\"{}\"", e.label)).collect();
                r.error(
                    d.span(),
                    format!("default `{}` is not the label of a [[menu]] entry", d.get_ref()),
                    format!("give one of {}", labels.join(", ")),
                );
                0
            }
        },
    };
    Some(Pc { bios, uefi, timeout, menu: entries, default })
}

fn menu_entry(index: usize, raw: Spanned<RawMenu>, r: &mut Report) -> Option<MenuEntry> {
    let span = raw.span();
    let raw = raw.into_inner();
    let at = format!("[[menu]] #{}", index + 1);
    let label = match raw.label {
        None => {
            r.error(span.clone(), format!("{at} has no `label`"), "add label = \"…\": the text the menu shows");
            None
        }
        Some(l) => {
            let text = l.get_ref();
            if text.trim().is_empty() || text.len() > MAX_LABEL || text.chars().any(char::is_control) {
                r.error(
                    l.span(),
                    format!("menu label `{text}` cannot be shown"),
                    format!("write one line of 1 to {MAX_LABEL} characters"),
                );
            }
            Some(l.into_inner())
        }
    };
    let kind = match &raw.kind {
        None => {
            r.error(
                span.clone(),
                format!("{at} has no `kind`"),
                "add kind = \"local\", \"kernel\", \"iso\" or \"chain\"",
            );
            None
        }
        Some(_) => {
            let words = [
                ("local", MenuKind::Local),
                ("kernel", MenuKind::Kernel),
                ("iso", MenuKind::Iso),
                ("chain", MenuKind::Chain),
            ];
            let before = r.0.len();
            let k = choice(
                &raw.kind,
                "kind",
                &words,
                "\"local\" (the machine's disk), \"kernel\" (a kernel and initrds), \"iso\" (an image via memdisk) or \"chain\" (another boot program)",
                MenuKind::Local,
                r,
            );
            (r.0.len() == before).then_some(k)
        }
    };
    let files: Vec<FileRef> = raw
        .files
        .as_ref()
        .map(|list| list.get_ref().iter().filter_map(|f| file_ref(f, r)).collect())
        .unwrap_or_default();
    let count = raw.files.as_ref().map_or(0, |f| f.get_ref().len());
    let files_span = raw.files.as_ref().map_or(span.clone(), |f| f.span());
    if let Some(kind) = kind {
        let wanted = match kind {
            MenuKind::Local => (count != 0).then_some("no `files`"),
            MenuKind::Kernel => (count == 0).then_some("the kernel, then any initrds, in `files`"),
            MenuKind::Iso | MenuKind::Chain => (count != 1).then_some("exactly one file in `files`"),
        };
        if let Some(wanted) = wanted {
            r.error(files_span, format!("a `{}` entry takes {wanted}", kind.name()), "see recipes/README.md, [[menu]]");
        }
        if let Some(a) = raw.append.as_ref().filter(|_| !matches!(kind, MenuKind::Kernel | MenuKind::Iso)) {
            r.error(a.span(), format!("`append` means nothing for a `{}` entry", kind.name()), "remove it");
        }
    }
    if let Some(a) = raw.append.as_ref().filter(|a| a.get_ref().contains(['\n', '\r'])) {
        r.error(a.span(), "`append` spans several lines", "the kernel command line is one line");
    }
    let firmware = raw.firmware.is_some().then(|| {
        choice(
            &raw.firmware,
            "firmware",
            &[("bios", EntryFirmware::Bios), ("uefi", EntryFirmware::Uefi)],
            "\"bios\" or \"uefi\" (leave it out for both)",
            EntryFirmware::Bios,
            r,
        )
    });
    Some(MenuEntry { label: label?, kind: kind?, files, append: raw.append.map(Spanned::into_inner), firmware })
}

/// One menu file: `deb:PACKAGE:/path`, `https://…#sha256=…`, or a path beside the recipe.
pub(super) fn file_ref(value: &Spanned<String>, r: &mut Report) -> Option<FileRef> {
    let text = value.get_ref();
    if let Some(rest) = text.strip_prefix("deb:") {
        let Some((package, path)) = rest.split_once(':').filter(|(p, path)| !p.is_empty() && path.starts_with('/'))
        else {
            r.error(
                value.span(),
                format!("`{text}` is not a package file"),
                "write deb:PACKAGE:/path/in/package, e.g. deb:memtest86+:/boot/memtest86+x64.bin",
            );
            return None;
        };
        return Some(FileRef::Deb { package: package.into(), path: path.into() });
    }
    if text.starts_with("http://") || text.starts_with("https://") {
        let Some((url, sha)) = text.split_once("#sha256=") else {
            r.error(
                value.span(),
                format!("`{text}` has no sha256"),
                "pin the download: append #sha256=<64 hex digits, as sha256sum prints>",
            );
            return None;
        };
        let sha = Spanned::new(value.span(), sha.to_string());
        let before = r.0.len();
        let d = download(Spanned::new(value.span(), url.to_string()), Some(sha), "file", r);
        return (r.0.len() == before).then_some(FileRef::Url(d));
    }
    let path = std::path::PathBuf::from(text);
    if text.is_empty() || path.file_name().is_none() {
        r.error(value.span(), format!("`{text}` names no file"), "write a path to a file beside the recipe");
        return None;
    }
    Some(FileRef::Local(path))
}

#[cfg(test)]
mod tests {
    use crate::recipe::{FileRef, MenuKind, parse};

    const BASE: &str = "[lab]\nname = \"t\"\n";

    fn errors(extra: &str) -> Vec<String> {
        let src = format!("{BASE}{extra}");
        parse(&src).diagnostics.into_iter().filter(|d| d.is_error()).map(|d| d.message).collect()
    }

    #[test]
    fn a_full_menu_parses() {
        let src = format!(
            "{BASE}[pc]\nbios = \"ipxe\"\ntimeout = 3\n\
             [[menu]]\nlabel = \"Disk\"\nkind = \"local\"\n\
             [[menu]]\nlabel = \"Linux\"\nkind = \"kernel\"\nfiles = [\"k/vmlinuz\", \"deb:foo:/boot/initrd\"]\nappend = \"quiet\"\n\
             [[menu]]\nlabel = \"DOS\"\nkind = \"iso\"\nfiles = [\"https://example.org/fd.iso#sha256={}\"]\n\
             [[client]]\nname = \"pc1\"\nmodel = \"pc\"\nmac = \"52:54:00:12:34:56\"\n",
            "a".repeat(64)
        );
        let parsed = parse(&src);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        let recipe = parsed.recipe.unwrap();
        let pc = recipe.pc.unwrap();
        assert_eq!(pc.timeout, 3);
        assert_eq!(pc.menu.len(), 3);
        assert_eq!(pc.menu[1].kind, MenuKind::Kernel);
        assert_eq!(pc.menu[1].files[1], FileRef::Deb { package: "foo".into(), path: "/boot/initrd".into() });
        assert_eq!(pc.menu[2].files[0].file_name(), "fd.iso");
        assert_eq!(pc.default, 0);
        assert_eq!(recipe.clients[0].boot, crate::recipe::ClientBoot::Menu);
    }

    #[test]
    fn the_default_entry_is_named_by_its_label() {
        let src = format!(
            "{BASE}[pc]\ndefault = \"Linux\"\n[[menu]]\nlabel = \"Disk\"\nkind = \"local\"\n\
             [[menu]]\nlabel = \"Linux\"\nkind = \"kernel\"\nfiles = [\"vmlinuz\"]\n"
        );
        let pc = parse(&src).recipe.unwrap().pc.unwrap();
        assert_eq!(pc.default, 1);
        assert_eq!(pc.menu[1].firmware, None);
        let bios_only = format!("{src}firmware = \"bios\"\n");
        assert_eq!(
            parse(&bios_only).recipe.unwrap().pc.unwrap().menu[1].firmware,
            Some(crate::recipe::EntryFirmware::Bios)
        );
    }

    #[test]
    fn a_pc_client_alone_gets_the_local_disk_entry() {
        let recipe =
            parse(&format!("{BASE}[[client]]\nname = \"pc1\"\nmodel = \"pc\"\nmac = \"52:54:00:12:34:56\"\n")).recipe;
        let pc = recipe.unwrap().pc.unwrap();
        assert_eq!(pc.menu.len(), 1);
        assert_eq!(pc.menu[0].kind, MenuKind::Local);
    }

    #[test]
    fn menu_mistakes_are_explained() {
        assert_eq!(
            errors("[[menu]]\nlabel = \"x\"\nkind = \"kernal\"\n"),
            ["kind = \"kernal\" is not one of local, kernel, iso, chain"]
        );
        assert_eq!(
            errors("[[menu]]\nlabel = \"x\"\nkind = \"kernel\"\n"),
            ["a `kernel` entry takes the kernel, then any initrds, in `files`"]
        );
        assert_eq!(
            errors("[[menu]]\nlabel = \"x\"\nkind = \"local\"\nappend = \"a\"\n"),
            ["`append` means nothing for a `local` entry"]
        );
        assert_eq!(
            errors("[[menu]]\nlabel = \"x\"\nkind = \"iso\"\nfiles = [\"https://example.org/a.iso\"]\n"),
            ["`https://example.org/a.iso` has no sha256"]
        );
        assert_eq!(
            errors("[[menu]]\nlabel = \"x\"\nkind = \"chain\"\nfiles = [\"deb:ipxe\"]\n"),
            ["`deb:ipxe` is not a package file"]
        );
        assert_eq!(errors("[[menu]]\nkind = \"local\"\n"), ["[[menu]] #1 has no `label`"]);
        assert_eq!(
            errors("[[menu]]\nlabel = \"x\"\nkind = \"local\"\nfirmware = \"efi\"\n"),
            ["firmware = \"efi\" is not one of bios, uefi"]
        );
        assert_eq!(errors("[pc]\ntimeout = -1\n"), ["timeout -1 is out of range"]);
        assert_eq!(
            errors("[pc]\ndefault = \"Dsk\"\n[[menu]]\nlabel = \"Disk\"\nkind = \"local\"\n"),
            ["default `Dsk` is not the label of a [[menu]] entry"]
        );
        assert!(errors("[menu]\nlabel = \"x\"\n")[0].contains("must be a list of tables"));
    }

    #[test]
    fn pcs_are_known_by_mac_and_boot_the_os_only_from_debian() {
        let pc = "[[client]]\nname = \"pc1\"\nmodel = \"pc\"\n";
        assert_eq!(errors(pc), ["client `pc1` is a PC without a `mac`"]);
        let os_boot = format!("{pc}mac = \"52:54:00:12:34:56\"\nboot = \"os\"\n");
        assert!(errors(&os_boot)[0].contains("has no UEFI kernel"));
        assert!(errors(&format!("[os]\nsource = \"debian\"\n{os_boot}")).is_empty());
        assert_eq!(
            errors(&format!("{pc}mac = \"52:54:00:12:34:56\"\nserial = \"00000001\"\n")),
            ["`serial` is for Raspberry Pis, not model = \"pc\""]
        );
        let pi = "[[client]]\nname = \"n1\"\nmodel = \"pi4\"\nserial = \"00000001\"\nboot = \"menu\"\n";
        assert_eq!(errors(pi), ["`boot` is for model = \"pc\""]);
    }
}
