"""`python -m kerastl.teach`: a local page to teach a model your own classes (docs/teach.md).

    session.py   the session is a folder: pictures/ one subfolder per class (what `fit --dataset`
                 reads); class names and pictures checked before anything is written
    training.py  transfer (frozen backbone features, cached per picture; a new head) and the CNN from
                 scratch, on kerastl's small-data schedule, scored by cross-validation or a held-out share;
                 the optional fine-tune (the backbone unfrozen), scored on the first fold
    teacher.py   one training (or fine-tune) at a time, in a thread; its progress and results; predicting; exporting
    export.py    the trained models as kerastl run folders; the transfer run through kerastl.export
    server.py    the page and its JSON API (kerastl.web.server)
    page.html    the page: classes, pictures from a canvas, the webcam or files, Train, Try it, Take it home
    __main__.py  the command line
"""
