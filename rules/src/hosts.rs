//! Reaching the inventory's hosts: a [`Transport`] per host, over the system OpenSSH client
//! (address, user and port from the inventory; everything else from the user's ssh config, or
//! the file named by `HL_SSH_CONFIG`), or local for `transport: local`.

use std::path::PathBuf;

use hl_engine::transport::SshTarget;
use hl_engine::Transport;

use crate::Topology;

/// Where the ControlMaster sockets live: short, private, per user.
fn control_dir() -> PathBuf {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let user = std::env::var("USER").unwrap_or_else(|_| "hl".into());
    let dir = base.join(format!("hl-ssh-{user}"));
    if std::fs::create_dir_all(&dir).is_ok() {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    dir
}

/// The transport to `host`, or `None` when the inventory does not know it.
pub fn transport(topology: &Topology, host: &str) -> Option<Transport> {
    let h = topology.hosts.get(host)?;
    if h.transport.as_deref() == Some("local") {
        return Some(Transport::local(host));
    }
    Some(Transport::ssh(
        host,
        SshTarget {
            destination: h.address.clone().unwrap_or_else(|| host.to_string()),
            port: h.ssh.as_ref().and_then(|s| s.port),
            user: h.ssh.as_ref().and_then(|s| s.user.clone()),
            config: std::env::var_os("HL_SSH_CONFIG").map(PathBuf::from),
            control_dir: control_dir(),
            connect_timeout: 5,
        },
    ))
}

/// The control node: the host whose role is `control`.
pub fn control(topology: &Topology) -> Option<(&String, &crate::Host)> {
    topology
        .hosts
        .iter()
        .find(|(_, h)| h.role.as_deref() == Some("control"))
}
