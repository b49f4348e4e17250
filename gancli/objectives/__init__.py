"""GAN objectives: adversarial losses, critic penalties, weight regularizers."""

from gancli.objectives.losses import (
    LOSSES,
    get_loss,
    hinge_d_loss,
    hinge_g_loss,
    ls_d_loss,
    ls_g_loss,
    ls_sigmoid_d_loss,
    ls_sigmoid_g_loss,
    minimax_d_loss,
    minimax_g_loss,
    ns_d_loss,
    ns_g_loss,
    ra_d_loss,
    ra_g_loss,
    wgan_d_loss,
    wgan_g_loss,
)
from gancli.objectives.penalties import (
    PENALTIES,
    clip_weights,
    critic_penalty,
    dragan_penalty,
    gradient_penalty,
    l2_penalty,
    orthogonal_regularization,
    r1_penalty,
)
