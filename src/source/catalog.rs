//! Raspberry Pi's OS list (`os_list_imagingutility_v4.json`, the file Raspberry Pi Imager reads):
//! find the release a catalog name such as `raspios-lite-arm64` means. Pure: JSON in, release
//! out; fetching the list and any nested `subitems_url` lists is the caller's job.
//!
//! A catalog name is matched by the download URL's variant folder
//! (`/raspios_lite_arm64/images/`), not by the display name, which changes between releases.

use serde::Deserialize;

/// Where Raspberry Pi publishes the list.
pub const OS_LIST_URL: &str = "https://downloads.raspberrypi.com/os_list_imagingutility_v4.json";

/// One OS image, as the list describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    pub name: String,
    pub url: String,
    /// sha256 of the download (`.img.xz`), if the list gives it; otherwise the `.sha256` file
    /// beside the image has it.
    pub download_sha256: Option<String>,
    pub download_size: Option<u64>,
    /// sha256 and size of the decompressed `.img`.
    pub extract_sha256: Option<String>,
    pub extract_size: Option<u64>,
    /// `YYYY-MM-DD`.
    pub release_date: Option<String>,
    /// How first-boot customisation works (`systemd`, `cloudinit-rpi`, …).
    pub init_format: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CatalogError {
    #[error("the OS list is not valid JSON: {0}")]
    Json(String),
    #[error("the OS list has no image for `{0}`")]
    NotFound(String),
}

#[derive(Deserialize)]
struct List {
    #[serde(default)]
    os_list: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    name: String,
    url: Option<String>,
    image_download_sha256: Option<String>,
    image_download_size: Option<u64>,
    extract_sha256: Option<String>,
    extract_size: Option<u64>,
    release_date: Option<String>,
    init_format: Option<String>,
    #[serde(default)]
    subitems: Vec<Item>,
    subitems_url: Option<String>,
}

/// The nested lists a list points to (`subitems_url`), to fetch before searching.
pub fn nested_lists(json: &[u8]) -> Result<Vec<String>, CatalogError> {
    let list: List = serde_json::from_slice(json).map_err(|e| CatalogError::Json(e.to_string()))?;
    let mut out = Vec::new();
    fn walk(items: &[Item], out: &mut Vec<String>) {
        for item in items {
            if let Some(url) = &item.subitems_url {
                out.push(url.clone());
            }
            walk(&item.subitems, out);
        }
    }
    walk(&list.os_list, &mut out);
    Ok(out)
}

/// The newest release of `catalog` among `lists` (the main list and any nested ones).
pub fn find(lists: &[&[u8]], catalog: &str) -> Result<Release, CatalogError> {
    let folder = format!("/{}/images/", catalog.replace('-', "_"));
    let mut found: Vec<Release> = Vec::new();
    fn walk(items: &[Item], folder: &str, found: &mut Vec<Release>) {
        for item in items {
            if let Some(url) = item.url.as_deref().filter(|u| u.contains(folder)) {
                found.push(Release {
                    name: item.name.clone(),
                    url: url.to_string(),
                    download_sha256: item.image_download_sha256.as_ref().map(|s| s.to_ascii_lowercase()),
                    download_size: item.image_download_size,
                    extract_sha256: item.extract_sha256.as_ref().map(|s| s.to_ascii_lowercase()),
                    extract_size: item.extract_size,
                    release_date: item.release_date.clone(),
                    init_format: item.init_format.clone(),
                });
            }
            walk(&item.subitems, folder, found);
        }
    }
    for json in lists {
        let list: List = serde_json::from_slice(json).map_err(|e| CatalogError::Json(e.to_string()))?;
        walk(&list.os_list, &folder, &mut found);
    }
    // The same image is often listed under several headings; the newest date wins.
    found
        .into_iter()
        .max_by(|a, b| a.release_date.cmp(&b.release_date))
        .ok_or_else(|| CatalogError::NotFound(catalog.into()))
}

/// The hash in a `sha256sum`-style sidecar file (`<hex>  <filename>`).
pub fn parse_sha256_file(text: &str) -> Option<String> {
    let hex = text.split_whitespace().next()?;
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then(|| hex.to_ascii_lowercase())
}

/// Unix time of a `YYYY-MM-DD` release date, at midnight UTC.
pub fn release_epoch(date: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(date, &format).ok()?;
    Some(day.midnight().assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{
      "imager": {"latest_version": "2.0.0"},
      "os_list": [
        {"name": "Raspberry Pi OS (64-bit)", "url": "https://downloads.raspberrypi.com/raspios_arm64/images/raspios_arm64-2026-05-13/2026-05-13-raspios-trixie-arm64.img.xz",
         "extract_size": 6106906624, "extract_sha256": "AA11", "image_download_size": 1198000000,
         "image_download_sha256": "BB22", "release_date": "2026-05-13", "init_format": "cloudinit-rpi", "devices": ["pi5-64bit"]},
        {"name": "Raspberry Pi OS (other)", "subitems": [
          {"name": "Raspberry Pi OS Lite (64-bit)", "url": "https://downloads.raspberrypi.com/raspios_lite_arm64/images/raspios_lite_arm64-2026-05-13/2026-05-13-raspios-trixie-arm64-lite.img.xz",
           "extract_sha256": "cc33", "image_download_size": 500, "release_date": "2026-05-13"},
          {"name": "Raspberry Pi OS Lite (Legacy, 64-bit)", "url": "https://downloads.raspberrypi.com/raspios_oldstable_lite_arm64/images/x/2025-11-24-raspios-bookworm-arm64-lite.img.xz",
           "release_date": "2025-11-24"}
        ]},
        {"name": "Other", "subitems_url": "https://downloads.raspberrypi.com/os_list_other.json"}
      ]
    }"#;

    #[test]
    fn catalog_names_match_the_variant_folder() {
        let r = find(&[LIST.as_bytes()], "raspios-lite-arm64").unwrap();
        assert_eq!(r.name, "Raspberry Pi OS Lite (64-bit)");
        assert!(r.url.ends_with("2026-05-13-raspios-trixie-arm64-lite.img.xz"));
        assert_eq!(r.download_sha256, None);
        assert_eq!(r.extract_sha256.as_deref(), Some("cc33"));
        let full = find(&[LIST.as_bytes()], "raspios-arm64").unwrap();
        assert_eq!(full.download_sha256.as_deref(), Some("bb22"));
        assert_eq!(full.init_format.as_deref(), Some("cloudinit-rpi"));
        assert_eq!(
            find(&[LIST.as_bytes()], "raspios-full-arm64"),
            Err(CatalogError::NotFound("raspios-full-arm64".into()))
        );
    }

    #[test]
    fn nested_lists_are_reported_and_searched() {
        assert_eq!(nested_lists(LIST.as_bytes()).unwrap(), ["https://downloads.raspberrypi.com/os_list_other.json"]);
        let other = r#"{"os_list": [{"name": "Raspberry Pi OS Full (64-bit)", "url": "https://x/raspios_full_arm64/images/a/b.img.xz", "release_date": "2026-01-01"},
                                     {"name": "Raspberry Pi OS Full (64-bit)", "url": "https://x/raspios_full_arm64/images/c/d.img.xz", "release_date": "2026-03-01"}]}"#;
        let r = find(&[LIST.as_bytes(), other.as_bytes()], "raspios-full-arm64").unwrap();
        assert!(r.url.ends_with("c/d.img.xz"));
        assert!(matches!(find(&[b"not json"], "x"), Err(CatalogError::Json(_))));
    }

    #[test]
    fn sidecars_and_dates() {
        let hex = "a".repeat(64);
        assert_eq!(parse_sha256_file(&format!("{hex}  2026-05-13-raspios.img.xz\n")), Some(hex));
        assert_eq!(parse_sha256_file("nonsense"), None);
        assert_eq!(release_epoch("2026-05-13"), Some(1_778_630_400));
        assert_eq!(release_epoch("13/05/2026"), None);
    }
}
