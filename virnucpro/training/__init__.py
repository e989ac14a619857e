"""Training a classifier of one\x27s own: inputs (GenBank, FASTA, FASTQ), features through the engines, the split, the fit and the new model set."""
