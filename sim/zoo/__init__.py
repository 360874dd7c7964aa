"""The bug zoo: realistic engine mutants (`mutants`), every search mode against each (`cells`), and the
machine-quality hunt (`quality`). Built on the searches."""
