"""AdamW as optax.adamw, run on the PyTorch model through the harness's DLPack bridge."""

import optax


def optimizer(params, hp, info):
    return optax.adamw(
        learning_rate=hp["lr"],
        b1=hp["beta1"],
        b2=hp["beta2"],
        eps=1e-8,
        weight_decay=hp["weight_decay"],
        mask=params.decay_mask(),
    )
