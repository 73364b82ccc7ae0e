// Package train owns what turns a model into a trained plugin: the
// training Loop every family shares (batches from the host, metrics,
// checkpoints, sample grids, held-out evaluation, final weights), the
// exactly resumable TrainState, and the weight files of presets with
// their architecture check (ParseArch, ArchCheck, LoadWeights). It is the
// one part of nn that imports the plugin SDK.
package train
