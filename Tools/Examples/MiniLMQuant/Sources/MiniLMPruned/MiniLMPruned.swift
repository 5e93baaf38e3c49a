// The pruned specs beside this file are `adaptc prune`'s output for the
// adapters `MiniLMQuant recover --save` trains (Tools/minilm re-runs prune and
// checks that it still writes these bytes; `--update-pruned` adopts new ones).
// AdaptcPlugin compiles each into `<Name>Adapter`, the names of the specs they
// were pruned from: `MiniLMQuant pruned` refers to them as `MiniLMPruned.<Name>Adapter`.
