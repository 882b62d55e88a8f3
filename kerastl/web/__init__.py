"""What kerastl's local pages share: the demo (`python -m kerastl.demo`) and teach (`python -m kerastl.teach`).

    server.py    the standard library's http.server made safe to leave running: JSON replies, a
                 refused request answered with one clear message (the server stays up), a body
                 size limit, a Content-Security-Policy that lets the page fetch only from this
                 server, 127.0.0.1 by default (a warning for any other host), Ctrl-C stops it
    pictures.py  a picture sent to a page, checked as an image folder's pictures are
                 (kerastl.data.folders: size limit, decompression bombs, broken files)
    page.py      a page assembled from its HTML and the shared head, style and script, inlined,
                 so a page is one request and nothing is fetched from elsewhere
    static/      head.html (the document's start every page shares), style.css (the look) and
                 pictures.js (the drawing pad, dropped or chosen files, sending a picture, top
                 classes as bars)
"""
