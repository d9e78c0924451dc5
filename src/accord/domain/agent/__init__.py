"""The site-agent protocol: orders, reports, signed usage (``docs/design/site-agent.md``)."""
