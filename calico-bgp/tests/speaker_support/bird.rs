//! A BIRD 2 daemon inside a test namespace: its configuration, start, `birdc` queries, and
//! removal of its files. The daemon itself dies with the namespace (the `Netns` guard kills
//! every process inside).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use calico_netns::fixtures::Netns;

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct Bird {
    pub dir: PathBuf,
}

impl Bird {
    /// Starts `bird` in `ns` with `protocols` appended to a preamble that sets the router id
    /// and a device protocol.
    pub fn start(ns: &Netns, router_id: &str, protocols: &str) -> Bird {
        Bird::start_with(ns, router_id, protocols, &[])
    }

    /// [`Bird::start`] with more command-line arguments (`-R`: graceful restart recovery,
    /// as after a restart with the forwarding state kept).
    pub fn start_with(ns: &Netns, router_id: &str, protocols: &str, args: &[&str]) -> Bird {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("calico-bgp-bird-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = format!(
            "router id {router_id};\nlog \"{}\" all;\nprotocol device {{ scan time 1; }}\n{protocols}\n",
            dir.join("bird.log").display()
        );
        std::fs::write(dir.join("bird.conf"), conf).unwrap();
        let bird = Bird { dir };
        let (conf, ctl, pid) = (
            bird.path("bird.conf"),
            bird.path("bird.ctl"),
            bird.path("bird.pid"),
        );
        let mut command = vec!["bird", "-c", &conf, "-s", &ctl, "-P", &pid];
        command.extend_from_slice(args);
        ns.run(&command)
            .unwrap_or_else(|e| panic!("bird failed to start: {e}"));
        bird
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    pub fn pid(&self) -> String {
        std::fs::read_to_string(self.path("bird.pid"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Runs a `birdc` command and returns its output.
    pub fn cli(&self, command: &str) -> String {
        let out = Command::new("birdc")
            .args(["-s", &self.path("bird.ctl")])
            .args(command.split_whitespace())
            .output()
            .expect("birdc runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// BIRD's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("bird.log")).unwrap_or_default()
    }

    /// Waits until `check` holds for the output of `command`.
    pub fn wait(&self, secs: u64, command: &str, what: &str, check: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let out = self.cli(command);
            if check(&out) {
                return;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.path("bird.log")).unwrap_or_default();
                panic!("timed out waiting for {what}: `{command}` says:\n{out}\nbird.log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A BGP protocol block for BIRD with fast timers for tests.
pub fn bgp_protocol(
    name: &str,
    local: &str,
    local_as: u32,
    neighbor: &str,
    remote_as: u32,
    channel: &str,
    hold: u16,
) -> String {
    // iBGP is multihop in BIRD unless told the peer is directly connected.
    let direct = if local_as == remote_as {
        "\n  direct;"
    } else {
        ""
    };
    format!(
        "protocol bgp {name} {{\n  local {local} as {local_as};\n  neighbor {neighbor} as {remote_as};{direct}\n  hold time {hold};\n  connect delay time 1;\n  connect retry time 1;\n  error wait time 1, 2;\n  {channel} {{ import all; export all; }};\n}}\n"
    )
}

/// An iBGP protocol block in AS `asn` for a BIRD on a loopback address: bound to its own
/// address only (several daemons share the namespace), fast timers, `extra` inside the
/// block and `channel` as the IPv4 channel's body.
pub fn ibgp_on_loopback(
    asn: u32,
    name: &str,
    (local, neighbor): (&str, &str),
    extra: &str,
    channel: &str,
) -> String {
    format!(
        "protocol bgp {name} {{\n  local {local} as {asn};\n  neighbor {neighbor} as {asn};\n  strict bind;\n  hold time 9;\n  connect delay time 1;\n  connect retry time 1;\n  error wait time 1, 2;\n{extra}  ipv4 {{ {channel} }};\n}}\n"
    )
}
