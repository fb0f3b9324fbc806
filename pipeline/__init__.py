"""zonos-serve inference library: text front end, Zonos model, batched engine. Never imports ray."""
