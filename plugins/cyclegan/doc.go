// Package cyclegan is the built-in plugin "cyclegan": image-to-image
// translation with CycleGAN (Zhu et al. 2017, unpaired domains, one model
// serving both directions) and pix2pix (Isola et al. 2017, paired
// images). See [Arch] for the networks.
package cyclegan
