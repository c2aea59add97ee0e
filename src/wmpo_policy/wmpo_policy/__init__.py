"""The VLA policy (model, tokenizer, normalisation, BC training), the policy server and its backends."""
