/* train_mlp — train a 784-256-128-10 perceptron on Fashion-MNIST, eagerly
 * or as a replayed graph (--mode eager|graph), from a fixed seed: loss and
 * accuracy per epoch, time per epoch. The training step is one C function
 * (train_models.h) — forward, gradients from a tape, an Adam update — that
 * runs as it is called in eager mode and is traced once into a graph in
 * graph mode.
 *
 *   train_mlp [--mode eager|graph] [--epochs 10] [--batch 64] [--limit IMAGES] [--seed 1]
 *
 * Needs Debian's dataset-fashion-mnist package (the Makefile installs it). */
#include "train_common.h"

int main(int argc, char **argv)
{
    train_args a = {0, 10, 64, 0, 1, 0, 0};
    if (train_parse(argc, argv, "train_mlp", &a))
        return 2;
    return train_main(&a, "train_mlp: 784-256-128-10, relu, Adam 1e-3", TM_MLP);
}
