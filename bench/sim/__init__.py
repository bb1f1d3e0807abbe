"""Discrete-event simulation of Spillgate against local-only, cloud-only and other policies."""
