#!/bin/sh
# Fashion-MNIST for dataset=fashion_mnist, from Debian's `dataset-fashion-mnist` package (bookworm main): the four
# IDX .gz files of the official 60,000 + 10,000 split in /usr/share/datasets/fashion-mnist/. The loader
# (experiments/data/fashion_mnist.py) checks the SHA-256 of every uncompressed file on each load; this script checks
# them once after the install, so a damaged package is reported here.
set -e
DIR=/usr/share/datasets/fashion-mnist
if [ ! -f "$DIR/train-images-idx3-ubyte.gz" ] && [ ! -f "$DIR/train-images-idx3-ubyte" ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "layerlab: apt-get is not available; get Fashion-MNIST with keras.datasets.fashion_mnist.load_data() or set dataset.path to a folder with its four IDX files." >&2
        exit 1
    fi
    SUDO=""
    if [ "$(id -u)" != "0" ]; then
        SUDO="sudo -n"   # never wait for a password
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist
fi
check() {  # file stem, expected SHA-256 of the uncompressed file
    if [ -f "$DIR/$1.gz" ]; then got=$(gzip -dc "$DIR/$1.gz" | sha256sum | cut -d' ' -f1)
    else got=$(sha256sum "$DIR/$1" | cut -d' ' -f1); fi
    if [ "$got" != "$2" ]; then
        echo "layerlab: $DIR/$1 has SHA-256 $got, not the official $2; reinstall dataset-fashion-mnist." >&2
        exit 1
    fi
}
check train-images-idx3-ubyte c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888
check train-labels-idx1-ubyte bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9
check t10k-images-idx3-ubyte 5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b
check t10k-labels-idx1-ubyte 0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34
echo "layerlab: Fashion-MNIST is in $DIR (SHA-256 checked); train with dataset=fashion_mnist"
