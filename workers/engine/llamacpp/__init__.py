"""llama.cpp for the hub (no Django): the pinned toolchain built once per machine (toolchain), GGUF conversion and
quantization (convert), and llama-server / llama-perplexity processes (runner). Import the submodules."""
