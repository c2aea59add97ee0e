"""The VLA policy (model, tokenizer, BC training), the policy server and its backends."""
