#!/usr/bin/env bash
# Installs the Debian packages Farm's tests and lab hosts use: the adb server, OpenSSH (client + sshd for the SSH
# fixtures), the Prometheus server, Alertmanager's amtool, node_exporter, and Chromium with its chromedriver (the
# farm page's browser test). Skips what is already installed; needs root (or sudo) otherwise.
set -euo pipefail
need=()
command -v adb >/dev/null 2>&1 || need+=(adb)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)  # amtool checks deploy/alertmanager/
# serves `farm regress --textfile-dir` files to Prometheus (tests/integration/test_prometheus.py, lab heads)
command -v prometheus-node-exporter >/dev/null 2>&1 || need+=(prometheus-node-exporter)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing Debian packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
