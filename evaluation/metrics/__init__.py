"""What the evaluation scripts compute (library code; the runnable scripts are one folder up).

    lse              LSE-D / LSE-C: syncnet_python's scoring, in memory
    syncnet          the LSE SyncNet of Chung & Zisserman (syncnet_v2.model)
    face_tracks      face tracks of real videos: scene cuts, tracks, crops
    fid_statistics   pytorch-fid's frame statistics and Fréchet distance
    inception        pytorch-fid's InceptionV3
"""
