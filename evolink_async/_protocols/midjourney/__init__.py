"""The Midjourney-proxy protocol (novicezk / trueai midjourney-proxy, new-api style gateways)."""
