"""What the tests share: seeded weights in the released format, confined runs (a read-only
folder, a full disk, a kill), test certificates, the reference's inference for comparison."""
