// Package viz draws what CALM layers learned, the way the paper shows it:
// kernels as a grid of tiles each scaled to its own min–max (Figures 3 and
// 5), the log-likelihood per epoch of each layer (Figure 4), what the
// E-step sees of an image (its most probable kernel and the posterior over
// positions), and the test accuracy against the number of labels.
//
// [KernelGrid] is a gonum/plot Plotter, so a grid can go into a researcher's
// own plot; the Save functions write complete PNG figures, each to a
// temporary file renamed into place.
package viz
