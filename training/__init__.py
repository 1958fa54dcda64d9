"""The training pipeline: preprocessed clips -> samples -> the three objectives -> checkpoints.

    preprocessing   videos -> face crops + audio.wav per clip (preprocess.py)
    dataset         filelists and the samples each trainer draws
    batches         the step-determined batches a run trains on
    objectives      the expert, the generator and the GAN: networks, steps, the syncnet_wt switch
    losses          every loss, defined once
    loop            the loop the trainers share (main_for, train, evaluate)
    session         device, ranks, mixed precision, TensorBoard, checkpoint writing
    checkpoints     checkpoint names, resume and pruning
    samples         the sample collages
    synthetic_data  a synthetic talking-face corpus (synthetic_corpus.py)
"""
