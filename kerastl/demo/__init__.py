"""`python -m kerastl.demo`: a local page to draw a digit and see several models' answers side by side.

    models.py   which models (run folders, a study's best runs), loaded once; classify one picture
                with the preprocessing of `kerastl.predict`
    server.py   the standard library's http.server: the page, /models and /predict
    page.html   the page: a canvas (mouse or finger), a drop zone, one column per model; nothing
                is fetched from the internet
    __main__.py the command line
"""
