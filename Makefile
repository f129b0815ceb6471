# calico-rs: two entry points, both safe to run on a fresh Debian machine as root.
#   make demo   the main job (see README)
#   make test   every test: fmt, clippy, the whole workspace's tests (privileged ones included as root)
SHELL := /bin/bash
.DEFAULT_GOAL := test

# Debian packages the privileged tests and the real demo use; protobuf-compiler is for the
# build (etcd-client compiles etcd's protobuf files); chromium is the headless browser the
# agent page's test loads the page in. Installed only when missing; without
# root, a warning and the unprivileged paths. clang, llvm, libbpf-dev, libelf-dev and
# bpftool are the eBPF toolchain issue #21 asks for: bpftool inspects what calico-ebpf
# loads (`bpftool prog`), and the rest builds C eBPF programs should one be wanted. The
# build needs none of them: calico-ebpf generates its programs in Rust at run time.
DEBS := nftables bird2 frr iproute2 iputils-ping netcat-openbsd procps util-linux etcd-server protobuf-compiler chromium podman runc containernetworking-plugins busybox-static iperf3 clang llvm libbpf-dev libelf-dev bpftool

.PHONY: deps test demo demo-eval bench fuzz

deps:
	@missing=""; \
	for p in $(DEBS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" -ne 0 ]; then \
	  echo "make: warning: missing Debian packages:$$missing; privileged tests and the real demo need them (run as root to install)" >&2; \
	elif [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  for svc in bird:bird2 frr:frr etcd:etcd-server; do \
	    case " $$missing " in *" $${svc#*:} "*) \
	      if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then \
	        echo "make deps: $${svc#*:} installed for the tests; its system service is not wanted (tests and the demo start their own): disabling $${svc%%:*}.service"; \
	        systemctl disable --now $${svc%%:*}.service >/dev/null 2>&1 || true; \
	      fi;; \
	    esac; \
	  done; \
	fi; \
	if [ "$$(id -u)" -eq 0 ] && ! mountpoint -q /sys/fs/bpf 2>/dev/null; then \
	  echo "make deps: mounting the BPF filesystem at /sys/fs/bpf (the eBPF dataplane pins split policies there)"; \
	  mount -t bpf bpf /sys/fs/bpf || echo "make: warning: could not mount /sys/fs/bpf: split eBPF policies will not outlive the agent" >&2; \
	fi; \
	command -v cargo >/dev/null || { echo "make: cargo not found: install a Rust toolchain (rustup) first" >&2; exit 1; }

# A clean run builds every test binary once: incremental caches would only double the disk it needs.
test: export CARGO_INCREMENTAL := 0
test: deps
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace

demo: deps
	@echo "make demo: building calico-agent and the demo (the first build takes a few minutes; cargo shows its progress)"
	cargo build -p calico-agent -p calico-examples --bins
	@echo "make demo: running; Ctrl-C stops it and removes everything it made"
	cargo run -q -p calico-examples --bin calico-cluster-demo -- $(DEMO_ARGS)

# The reference evaluator on a model file: which policies apply, and why each probe passes.
demo-eval: deps
	cargo run -q -p calico-examples --bin calico-demo -- examples/demo/model.yaml

bench: deps
	cargo bench -p calico-core
	cargo bench -p calico-linux
	cargo bench -p calico-bgp
	cargo bench -p calico-examples
