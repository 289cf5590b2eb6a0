//! `daemon.toml` for `bramble serve`, written from the recipe (format: docs/daemon.md). Paths in
//! it are relative to the file, so the lab folder can move (`bramble deploy` copies it to
//! /srv/bramble unchanged).

use super::pc::BootFiles;
use crate::recipe::{ClientBoot, DhcpMode, Model, Recipe};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Serialize)]
struct DaemonToml {
    lab: String,
    interface: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    tftp: Tftp,
    dhcp: Dhcp,
    #[serde(skip_serializing_if = "Option::is_none")]
    boot: Option<Boot>,
    #[serde(rename = "client")]
    clients: Vec<Client>,
}

#[derive(Serialize)]
struct Tftp {
    root_dirs: Vec<String>,
}

#[derive(Serialize)]
struct Dhcp {
    mode: &'static str,
    answer: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    range: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subnet: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    router: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
    lease_file: String,
}

#[derive(Serialize)]
struct Boot {
    bios: String,
    uefi_x64: String,
    uefi_arm64: String,
    http_x64: String,
    http_arm64: String,
    ipxe: String,
}

#[derive(Serialize)]
struct Client {
    name: String,
    model: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    dirs: Vec<String>,
}

/// Where a Pi's files come from, in order: its own folder, its bootloader update (Pis look for
/// `pieeprom.upd` under their prefix), the shared boot files.
pub fn pi_dirs(client: &str, eeprom_dir: Option<&str>, os_id: &str) -> Vec<String> {
    let mut dirs = vec![format!("clients/{client}")];
    dirs.extend(eeprom_dir.map(str::to_string));
    dirs.push(format!("os/{os_id}/boot"));
    dirs
}

/// The text of `daemon.toml`; `lab_dir` is where the lab is (`.`: beside the file).
/// `eeprom_dirs` gives each Pi client's bootloader-update folder
/// (none for Pi 3s), `os_id` the shared OS's folder name, `boot` the PC boot files if the lab
/// has a `pc/` folder, `lease_file` where server-mode leases are kept.
pub fn render(
    recipe: &Recipe,
    recipe_name: &str,
    lab_dir: &str,
    os_id: Option<&str>,
    eeprom_dirs: &dyn Fn(&str) -> Option<String>,
    boot: Option<&BootFiles>,
    lease_file: &str,
) -> String {
    let server = &recipe.server;
    let mut root_dirs = Vec::new();
    if let Some(os) = os_id {
        root_dirs.push(format!("os/{os}/boot"));
    }
    if boot.is_some() {
        root_dirs.push("pc".into());
    }
    let server_mode = server.dhcp == DhcpMode::Server;
    let dhcp = Dhcp {
        mode: match server.dhcp {
            DhcpMode::Proxy => "proxy",
            DhcpMode::Server => "server",
            DhcpMode::Off => "off",
        },
        answer: server.answer.name(),
        range: server.range.filter(|_| server_mode).map(|r| r.to_string()),
        subnet: server.address.filter(|_| server_mode).map(|n| format!("{}/{}", n.network(), n.prefix)),
        router: server.gateway.filter(|_| server_mode).map(|g| g.to_string()),
        dns: if server_mode { server.dns.iter().map(|d| d.to_string()).collect() } else { Vec::new() },
        domain: server.domain.clone().filter(|_| server_mode),
        lease_file: lease_file.into(),
    };
    let mut clients = Vec::new();
    for c in &recipe.clients {
        let prefix_mode: u8 = recipe.eeprom_value(c, "TFTP_PREFIX").and_then(|v| v.parse().ok()).unwrap_or(0);
        let prefix = (c.model.is_pi() && c.model != Model::Pi3 && prefix_mode == 1)
            .then(|| recipe.eeprom_value(c, "TFTP_PREFIX_STR").unwrap_or("").to_string());
        let dirs = match (c.model, c.boot, os_id) {
            (Model::Pc, _, _) => vec!["pc".to_string()],
            (_, ClientBoot::Os, Some(os)) => pi_dirs(&c.name, eeprom_dirs(&c.name).as_deref(), os),
            _ => vec![format!("clients/{}", c.name)],
        };
        clients.push(Client {
            name: c.name.clone(),
            model: c.model.name(),
            serial: c.serial.map(|s| s.to_string()),
            mac: c.mac.map(|m| m.to_string()),
            prefix,
            address: c.address.map(|a| a.to_string()),
            dirs,
        });
    }
    let doc = DaemonToml {
        lab: lab_dir.into(),
        interface: server.interface.clone(),
        address: server.address.map(|n| n.addr.to_string()),
        tftp: Tftp { root_dirs },
        dhcp,
        boot: boot.map(|b| Boot {
            bios: b.bios.clone(),
            uefi_x64: b.uefi_x64.clone(),
            uefi_arm64: b.uefi_arm64.clone(),
            http_x64: format!("{{http}}{}", b.http_x64),
            http_arm64: format!("{{http}}{}", b.http_arm64),
            ipxe: format!("{{http}}{}", b.ipxe),
        }),
        clients,
    };
    let body = toml::to_string(&doc).expect("the daemon config always serialises");
    format!(
        "# daemon.toml for `bramble serve --config`, written by `bramble build` from {recipe_name}.\n\
         # Rebuild rather than edit: the next build replaces it. Format: docs/daemon.md.\n\n{body}"
    )
}

/// The lease file a lab build names: beside daemon.toml.
pub fn default_lease_file() -> PathBuf {
    PathBuf::from("leases.toml")
}
