"""The command-line tools: common (parser base, error contract, quiet start-up), gatys
(nst-gatys), decoupled (nst-decoupled). Each command's module has main(argv=None) -> exit code."""
