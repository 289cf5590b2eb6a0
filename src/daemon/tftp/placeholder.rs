//! A lab built without a fixed server address names the NFS server in each client's
//! cmdline.txt as `@BRAMBLE_SERVER@` (`bramble build` cannot know it); the daemon puts in the
//! address the client reached it on, so the NFS root is mounted from the machine that booted it.

use std::net::IpAddr;

/// What `bramble build` writes in place of the server's address.
pub const SERVER: &[u8] = b"@BRAMBLE_SERVER@";

/// `text` with every placeholder replaced by `local`, or `None` if it has none.
pub fn fill_server(text: &[u8], local: IpAddr) -> Option<Vec<u8>> {
    let first = memchr::memmem::find(text, SERVER)?;
    let address = local.to_string();
    let mut out = Vec::with_capacity(text.len() + address.len());
    out.extend_from_slice(&text[..first]);
    let mut rest = &text[first..];
    while let Some(at) = memchr::memmem::find(rest, SERVER) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(address.as_bytes());
        rest = &rest[at + SERVER.len()..];
    }
    out.extend_from_slice(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_gets_the_address() {
        let local: IpAddr = "10.42.0.1".parse().unwrap();
        let text = b"root=/dev/nfs nfsroot=@BRAMBLE_SERVER@:/srv/bramble/os/x/root,nfsvers=3 x=@BRAMBLE_SERVER@\n";
        let filled = fill_server(text, local).unwrap();
        assert_eq!(filled, b"root=/dev/nfs nfsroot=10.42.0.1:/srv/bramble/os/x/root,nfsvers=3 x=10.42.0.1\n");
        assert_eq!(fill_server(b"console=tty1", local), None);
    }
}
