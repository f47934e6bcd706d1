"""Loopback fakes of network services we cannot reach in tests."""
