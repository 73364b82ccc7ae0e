// Package digits is an MNIST digit classifier and the sample-quality
// metrics built on it, for judging image generators trained on MNIST (the
// GAN family's conditional accuracy, class spread and Fréchet distance).
// It is a test and tooling aid, not a plugin.
//
// The classifier is a small CNN built with nn/layers (see network for
// the layers) whose weights are embedded (weights.safetensors, F16,
// ~0.9 MB). They are trained from scratch by
//
//	go run ./eval/digits/cmd/train-digits
//
// which records the training configuration, the time it took, the test
// accuracy and the reference distances below in the file's metadata
// (Classifier.Metadata). With DefaultTrainConfig the embedded weights
// classify 99.21% of the 10,000 MNIST test digits correctly (training:
// 6 epochs, 481 s on the 2-core development machine).
//
// # Metrics
//
//   - LabelAgreement: the fraction of samples whose most probable class
//     is the requested label (conditional generators).
//   - ClassEntropy: the entropy in bits of the histogram of predicted
//     classes; log2(10) ≈ 3.32 for an even spread, 0 for a generator
//     collapsed onto one digit.
//   - FrechetDistance: the FID formula applied to the classifier's 128
//     feature activations (the ReLU layer before the logits) instead of
//     Inception's.
//
// # Reference Fréchet distances
//
// The numbers are only meaningful against references computed with the
// same classifier and set sizes (the estimate is biased upwards for small
// sets). These were measured by train-digits with the embedded weights
// (recorded as "reference_fd"; TestReferenceDistances recomputes them).
// Unless stated, a set of digits is compared with the 10,000 test digits,
// which is the GAN evaluation protocol with 1,000 samples:
//
//	| digits compared with the 10,000 test digits    |   FD   |
//	|------------------------------------------------|--------|
//	| all 60,000 training digits                      |    5.2 |
//	| test digits at even vs odd positions (5k/5k)    |    8.2 |
//	| 1,000 training digits (a perfect generator)     |   47.5 |
//	| first vs second 5,000 test digits (see below)   |  132.6 |
//	| 1,000 blurred training digits (3x3 binomial)    |  166.1 |
//	| 1,000 training digits classified 0-4 only       |  508.5 |
//	| 1,000 training digits shifted 2 px down, right  | 1072.3 |
//	| 1,000 uniform-noise images                      | 5328.5 |
//
// The first and second halves of MNIST's test file are not two samples
// of one distribution: according to the MNIST page the first 5,000 come
// from NIST's SD-3 (Census Bureau employees) and are cleaner and easier
// than the last 5,000 (SD-1, high-school students). Use the interleaved
// split as the same-distribution baseline.
//
// Class entropy for reference: the test set's predicted classes 3.319
// bits (its labels 3.319), 1,000 training digits 3.316, blank images 0.
//
// So a generator whose 1,000 samples score near the "1,000 training
// digits" line is as close to MNIST as this classifier can tell; the
// distorted and mode-dropping lines show what visibly worse samples cost.
package digits
