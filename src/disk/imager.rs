//! Raspberry Pi Imager's OS list (the v4 JSON of
//! `downloads.raspberrypi.com/os_list_imagingutility_v4.json`; schema in rpi-imager's
//! `doc/json-schema/os-list-schema.json`, field notes in `doc/schema-notes.md`): one entry for
//! an image we built, wrapped as `{"os_list": [entry]}` so Imager takes it as a custom
//! repository (`rpi-imager --repo FILE`, or "Use custom" → the JSON file).
//!
//! Pure: values in, JSON text out, every value checked first. Not for: reading Imager's
//! lists (`source::catalog` does), or customisation (`init_format` is left out, so Imager
//! offers none: our server image configures itself).

use super::xz_write::XzSummary;
use anyhow::{Result, bail};
use serde::Serialize;

/// One OS in the list. Field names are Imager's; their order is the schema's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImagerEntry {
    /// Shown in the "Choose OS" list.
    pub name: String,
    pub description: String,
    /// An icon URL (or a path Imager can open).
    pub icon: String,
    /// Where Imager downloads the image: `https://…/server.img.xz`, or `file:///…` for a local
    /// file.
    pub url: String,
    /// The uncompressed image's size and sha256: Imager checks the written bytes against it
    /// and refuses to finish the write on a mismatch.
    pub extract_size: u64,
    pub extract_sha256: String,
    /// The downloaded (compressed) file's size and sha256.
    pub image_download_size: u64,
    pub image_download_sha256: String,
    /// `YYYY-MM-DD`.
    pub release_date: String,
    /// Imager's device tags, e.g. `pi5-64bit`, `pi4-64bit`, `pi3-64bit`.
    pub devices: Vec<String>,
    /// Optional "more information" link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
}

impl ImagerEntry {
    /// An entry for the `.img.xz` that [`super::xz_write::compress_file`] summarised as `xz`.
    pub fn for_compressed_image(
        name: &str,
        description: &str,
        icon: &str,
        url: &str,
        release_date: &str,
        devices: &[&str],
        xz: &XzSummary,
    ) -> ImagerEntry {
        ImagerEntry {
            name: name.into(),
            description: description.into(),
            icon: icon.into(),
            url: url.into(),
            extract_size: xz.input_size,
            extract_sha256: xz.input_sha256.clone(),
            image_download_size: xz.output_size,
            image_download_sha256: xz.output_sha256.clone(),
            release_date: release_date.into(),
            devices: devices.iter().map(|d| d.to_string()).collect(),
            website: None,
        }
    }
}

/// `YYYY-MM-DD` of a Unix time, UTC (the build's SOURCE_DATE_EPOCH, say).
pub fn release_date(unix: i64) -> Result<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(unix)?;
    Ok(format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()))
}

#[derive(Serialize)]
struct OsList<'a> {
    os_list: &'a [ImagerEntry],
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn check(entry: &ImagerEntry) -> Result<()> {
    let who = &entry.name;
    for (field, value) in
        [("name", &entry.name), ("description", &entry.description), ("icon", &entry.icon), ("url", &entry.url)]
    {
        if value.trim().is_empty() {
            bail!("Imager entry `{who}`: `{field}` is empty");
        }
    }
    for (field, value) in
        [("extract_sha256", &entry.extract_sha256), ("image_download_sha256", &entry.image_download_sha256)]
    {
        if !is_sha256_hex(value) {
            bail!("Imager entry `{who}`: `{field}` must be 64 lower-case hex digits, not `{value}`");
        }
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    if entry.release_date.len() != 10 || time::Date::parse(&entry.release_date, format).is_err() {
        bail!("Imager entry `{who}`: `release_date` must be a date as YYYY-MM-DD, not `{}`", entry.release_date);
    }
    if entry.devices.is_empty() || entry.devices.iter().any(|d| d.trim().is_empty()) {
        bail!("Imager entry `{who}`: `devices` must name at least one device tag (e.g. pi5-64bit)");
    }
    if entry.extract_size == 0 || entry.image_download_size == 0 {
        bail!("Imager entry `{who}`: sizes must not be 0");
    }
    Ok(())
}

/// `{"os_list": [entries]}`, pretty-printed with a final newline, after checking every entry.
pub fn os_list_json(entries: &[ImagerEntry]) -> Result<String> {
    if entries.is_empty() {
        bail!("an Imager OS list needs at least one entry");
    }
    for entry in entries {
        check(entry)?;
    }
    let mut text = serde_json::to_string_pretty(&OsList { os_list: entries })?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn entry() -> ImagerEntry {
        let xz = XzSummary {
            input_size: 4_236_247_040,
            input_sha256: "a".repeat(64),
            output_size: 1_306_588_543,
            output_sha256: "b".repeat(64),
            threads: 2,
        };
        ImagerEntry::for_compressed_image(
            "Bramble lab server",
            "Serves the lab's Raspberry Pis over the network",
            "https://example.org/bramble.png",
            "https://example.org/server.img.xz",
            &release_date(1_700_000_000).unwrap(),
            &["pi5-64bit", "pi4-64bit", "pi3-64bit"],
            &xz,
        )
    }

    /// The schema's rules for an OS entry (`os_list/items/anyOf/0`: required keys and their
    /// types) and for the top level (`os_list` required, nothing but `imager` beside it), plus
    /// `devices`, which doc/schema-notes.md lists as required.
    #[test]
    fn output_meets_the_imager_schema() {
        let json: Value = serde_json::from_str(&os_list_json(&[entry()]).unwrap()).unwrap();
        let top = json.as_object().unwrap();
        assert_eq!(top.keys().collect::<Vec<_>>(), ["os_list"]);
        let list = top["os_list"].as_array().unwrap();
        assert_eq!(list.len(), 1);
        let os = list[0].as_object().unwrap();
        let strings = ["name", "description", "icon", "url", "extract_sha256", "release_date", "image_download_sha256"];
        for key in strings {
            assert!(os[key].is_string(), "{key}");
        }
        for key in ["extract_size", "image_download_size"] {
            assert!(os[key].is_u64(), "{key}");
        }
        assert!(os["devices"].as_array().unwrap().iter().all(Value::is_string));
        assert!(!os.contains_key("init_format") && !os.contains_key("website"));
        assert_eq!(os["release_date"], "2023-11-14");
        assert_eq!(os["extract_size"], 4_236_247_040u64);
        assert_eq!(os["image_download_sha256"], "b".repeat(64));
    }

    #[test]
    fn bad_values_are_refused_naming_the_field() {
        type Edit = Box<dyn Fn(&mut ImagerEntry)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|e| e.extract_sha256 = "A".repeat(64)), "extract_sha256"),
            (Box::new(|e| e.image_download_sha256.truncate(10)), "image_download_sha256"),
            (Box::new(|e| e.release_date = "2023-13-01".into()), "release_date"),
            (Box::new(|e| e.release_date = "14.11.2023".into()), "release_date"),
            (Box::new(|e| e.devices.clear()), "devices"),
            (Box::new(|e| e.url = " ".into()), "`url`"),
            (Box::new(|e| e.extract_size = 0), "sizes"),
        ];
        for (edit, field) in cases {
            let mut e = entry();
            edit(&mut e);
            let err = os_list_json(&[e]).unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
        assert!(os_list_json(&[]).is_err());
    }
}
