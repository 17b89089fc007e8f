"""The analysis rules of docs/rules.md, one module per analysis type, each a plain function over TenantContext."""
