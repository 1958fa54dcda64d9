"""The training pipeline: preprocessed clips -> samples -> the three objectives -> checkpoints.

    preprocessing   videos -> face crops + audio.wav per clip (preprocess.py)
    dataset         filelists and the samples each trainer draws
    batches         the step-determined batches a run trains on
    objectives      the expert, the generator and the GAN: networks, steps, the syncnet_wt switch
    losses          every loss, defined once
    command_line    the trainers' flags and entry point (main_for): flags -> a TrainingConfig
    config          TrainingConfig: a run's whole configuration, in every checkpoint and run.json
    config_file     --config FILE: flags and hyper-parameters from YAML or JSON (a run.json too)
    loop            the loop the trainers share (run_training, train, evaluate)
    session         device, ranks, mixed precision, TensorBoard; rank 0 saves
    checkpoints     checkpoint names and saving, resume, the run of each, pruning
    folder_lock     one run per checkpoint folder
    samples         the sample collages
    synthetic_data  a synthetic talking-face corpus (synthetic_corpus.py)
"""
