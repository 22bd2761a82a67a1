"""Flower client side: the ClientApp (a thin adapter over ``fedfair.pipeline``)."""

from fedfair.env import set_offline_defaults

set_offline_defaults()
