from bayesdissect.data.catalogue import (
    BASIC_KEYS,
    CASES,
    JUDGE_KEYS,
    JUDGES,
    PROPERTIES,
    judge_info,
)


def test_properties_in_paper_order():
    assert [p.index for p in PROPERTIES] == list(range(29))
    assert PROPERTIES[15].name == "non-repetitive" and PROPERTIES[15].key == "repetitive"
    assert PROPERTIES[22].name == "no severe errors"
    assert len(BASIC_KEYS) == 20
    assert CASES == ("intent_unclear", "express_feeling", "w_constraints", "w_stances",
                     "w_mistakes")


def test_judges():
    assert len(JUDGES) == 33 and len(set(JUDGE_KEYS)) == 33
    assert JUDGE_KEYS[-1] == "human" and "wizardLM-13b-v1.2" in JUDGE_KEYS
    assert sum(j.type == "base" for j in JUDGES) == 10
    assert sum(j.type == "aligned" for j in JUDGES) == 20
    assert judge_info("my-judge").display == "my-judge"
