#!/bin/sh
# Graphviz's `dot` for the model picture (experiments/models/picture.py, keras.utils.plot_model's renderer).
# Installed from Debian's `graphviz` package only when `dot` is missing (CI runs as root on Debian, with apt
# access). Never fails the install: without Graphviz every run still works and says in one line how to get it.
if command -v dot >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "layerlab: Graphviz's dot is missing and apt-get is not available; runs work without it, but to get the model picture install Graphviz (brew install graphviz, conda install graphviz, or your system's package)." >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo -n"   # never wait for a password inside make
fi
if $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq graphviz; then
    exit 0
fi
echo "layerlab: could not install Graphviz (apt-get install graphviz failed, or needs a password); runs work without it, but for the model picture run: sudo apt-get install graphviz" >&2
exit 0
