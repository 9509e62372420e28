"""Permanent file storage on Arweave, billed with the gateway's keys and quota."""
