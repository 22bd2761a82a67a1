"""Flower server side: strategies (thin adapters over ``fedfair``) and the ServerApp."""

from fedfair.env import set_offline_defaults

set_offline_defaults()
