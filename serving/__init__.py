"""serve.py's server: a local web page for live lip-sync over WebRTC and for uploads.

    app     LipSyncServer: the routes, the access rules, the face and generator prepared once
    live    LiveSession: a browser's microphone in, lip-synced video and audio out (aiortc)
    jobs    UploadJobs: the upload form's jobs, run by the file pipeline with their progress
    page/   the page itself (HTML and JavaScript, no build step)
"""
