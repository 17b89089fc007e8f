"""The analysis rules of RULES.md, one module per analysis type, each a plain function over TenantContext."""
