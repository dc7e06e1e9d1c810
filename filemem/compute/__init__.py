"""Compute host: startup checks, resource tracking and the reconcile agent."""
